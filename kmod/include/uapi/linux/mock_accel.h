/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * mock-accel: user space interface of the mock PCIe accelerator driver.
 *
 * The character device /dev/mock<N> (PF) or /dev/mock<N>-vf<M> (VF)
 * answers these ioctls.  See kmod/ABI.md for the full contract.
 */
#ifndef _UAPI_LINUX_MOCK_ACCEL_H
#define _UAPI_LINUX_MOCK_ACCEL_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define MOCK_ACCEL_IOC_MAGIC		'M'

/* STATUS register bits */
#define MOCK_ACCEL_STATUS_READY		0x1
#define MOCK_ACCEL_STATUS_ALLOCATED	0x2
#define MOCK_ACCEL_STATUS_ERROR		0x4

/* CAPABILITIES register bits */
#define MOCK_ACCEL_CAP_PASSPHRASE	0x1
#define MOCK_ACCEL_CAP_SRIOV		0x2

/* mock_accel_info.device_type */
#define MOCK_ACCEL_TYPE_PF		0
#define MOCK_ACCEL_TYPE_VF		1

/* mock_accel_info.health */
#define MOCK_ACCEL_HEALTH_OK		0
#define MOCK_ACCEL_HEALTH_FAILED	1

#define MOCK_ACCEL_PASSPHRASE_MAX_WORDS		12
#define MOCK_ACCEL_PASSPHRASE_DEFAULT_WORDS	6
#define MOCK_ACCEL_PASSPHRASE_LEN		256

/* 257 bytes, binary compatible with the seed driver */
struct mock_accel_passphrase {
	__u8 word_count;	/* in: 0 means 6, 1..12 allowed */
	char passphrase[MOCK_ACCEL_PASSPHRASE_LEN];	/* out: NUL-terminated */
};

/* 184 bytes */
struct mock_accel_info {
	__u8  uuid[16];
	__u64 memory_size;
	__s32 numa_node;
	__u32 capabilities;
	__u32 status;
	__u32 fw_version;
	__u32 revision;
	__u32 wordlist_size;
	__u16 sriov_totalvfs;	/* 0 for a VF */
	__u16 sriov_numvfs;	/* 0 for a VF */
	__u8  device_type;	/* MOCK_ACCEL_TYPE_* */
	__u8  health;		/* MOCK_ACCEL_HEALTH_* */
	__u8  wordlist_loaded;
	__u8  reserved0;
	char  name[32];
	char  physfn[32];	/* "" for a PF */
	char  pci_address[16];
	char  pcie_root[16];
	__u8  reserved[32];
};

#define MOCK_ACCEL_IOC_STATUS		_IOR(MOCK_ACCEL_IOC_MAGIC, 1, __u32)
#define MOCK_ACCEL_IOC_PASSPHRASE	_IOWR(MOCK_ACCEL_IOC_MAGIC, 2, \
					      struct mock_accel_passphrase)
#define MOCK_ACCEL_IOC_INFO		_IOR(MOCK_ACCEL_IOC_MAGIC, 3, \
					     struct mock_accel_info)

#endif /* _UAPI_LINUX_MOCK_ACCEL_H */
