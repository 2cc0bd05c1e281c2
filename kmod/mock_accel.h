/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mock-accel: internal definitions shared by the files of the driver.
 *
 * A struct mock_accel_dev is one function (PF or VF) as user space sees it:
 * a class device, a /dev node and a register file reached through the
 * accessors of its backend (PCI BAR0 or an in-memory register file).
 */
#ifndef _MOCK_ACCEL_H
#define _MOCK_ACCEL_H

#include <linux/atomic.h>
#include <linux/bits.h>
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/types.h>

#include "include/uapi/linux/mock_accel.h"

#define MOCK_ACCEL_NAME			"mock-accel"
#define MOCK_ACCEL_FW_NAME		"mock-accel-wordlist.txt"

#define MOCK_ACCEL_PCI_VENDOR		0x1de5
#define MOCK_ACCEL_PCI_PF		0x0001
#define MOCK_ACCEL_PCI_VF		0x0002

#define MOCK_ACCEL_MAX_PFS		256
#define MOCK_ACCEL_MAX_VFS		64
#define MOCK_ACCEL_MAX_NUMA_NODES	64
#define MOCK_ACCEL_MAX_MINORS		(MOCK_ACCEL_MAX_PFS * \
					 (MOCK_ACCEL_MAX_VFS + 1))
#define MOCK_ACCEL_NAME_LEN		32

/* BAR0 register map */
#define MOCK_ACCEL_REG_DEVICE_ID	0x000
#define MOCK_ACCEL_REG_REVISION		0x004
#define MOCK_ACCEL_REG_UUID		0x008
#define MOCK_ACCEL_REG_MEMORY_SIZE	0x020
#define MOCK_ACCEL_REG_CAPABILITIES	0x028
#define MOCK_ACCEL_REG_STATUS		0x02c
#define MOCK_ACCEL_REG_FW_VERSION	0x030
#define MOCK_ACCEL_REG_PP_CMD		0x100
#define MOCK_ACCEL_REG_PP_LENGTH	0x104
#define MOCK_ACCEL_REG_PP_STATUS	0x108
#define MOCK_ACCEL_REG_PP_COUNT		0x10c
#define MOCK_ACCEL_REG_PP_BUFFER	0x200
#define MOCK_ACCEL_BAR_SIZE		0x300

#define MOCK_ACCEL_DEVICE_ID		0x4d4f434b	/* "MOCK" */
#define MOCK_ACCEL_PP_CMD_GENERATE	1
#define MOCK_ACCEL_PP_IDLE		0
#define MOCK_ACCEL_PP_DONE		1
#define MOCK_ACCEL_PP_ERROR		2

#define MOCK_ACCEL_STATUS_MASK		(MOCK_ACCEL_STATUS_READY | \
					 MOCK_ACCEL_STATUS_ALLOCATED | \
					 MOCK_ACCEL_STATUS_ERROR)

struct mock_accel_dev;

/**
 * struct mock_accel_backend - what a backend provides to the device model
 * @read32: read a 32-bit register (called with the device lock held)
 * @write32: write a 32-bit register (called with the device lock held)
 * @set_fault: make the device fail (ERROR) or recover (device lock held)
 * @sriov_numvfs: number of enabled VFs of a PF
 * @sriov_configure: enable @num_vfs VFs (from 0) or disable them all
 *	(@num_vfs == 0); called with the PF's sriov_lock held
 * @release: free the backend data; called on the last reference
 */
struct mock_accel_backend {
	u32 (*read32)(struct mock_accel_dev *adev, unsigned int off);
	void (*write32)(struct mock_accel_dev *adev, unsigned int off, u32 val);
	void (*set_fault)(struct mock_accel_dev *adev, bool fail);
	unsigned int (*sriov_numvfs)(struct mock_accel_dev *adev);
	int (*sriov_configure)(struct mock_accel_dev *adev,
			       unsigned int num_vfs);
	void (*release)(struct mock_accel_dev *adev);
};

struct mock_accel_dev {
	struct kref kref;
	/* registers, passphrase engine, @dead, @pp_count */
	struct mutex lock;
	bool dead;

	const struct mock_accel_backend *ops;
	void *priv;

	/* set before registration, constant afterwards */
	struct device *parent;
	char name[MOCK_ACCEL_NAME_LEN];
	char physfn[MOCK_ACCEL_NAME_LEN];
	char pci_address[16];
	char pcie_root[16];
	int id;			/* PF number N */
	int vf;			/* M for a VF, -1 for a PF */
	int numa_node;		/* configured node, -1 when unknown */
	u16 total_vfs;		/* PF only */
	struct mock_accel_dev *pf;	/* VF only, holds a reference */

	unsigned int pp_count;

	/* registration */
	struct device *dev;	/* class device */
	struct cdev *cdev;
	dev_t devt;
	int minor;
	bool published;		/* reachable by open(); mock_accel_lock */
	atomic_t open_count;

	/* PF: its registered VFs; mock_accel_lock */
	struct list_head vfs;
	struct list_head vf_node;
	/* PF: serializes SR-IOV changes */
	struct mutex sriov_lock;
};

static inline bool mock_accel_is_vf(const struct mock_accel_dev *adev)
{
	return adev->vf >= 0;
}

/* core.c */
extern struct mutex mock_accel_lock;
extern unsigned short mock_accel_dev_mode;
extern int mock_accel_status_gid;
extern struct device *mock_accel_root;
struct mock_accel_dev *
mock_accel_dev_alloc(const struct mock_accel_backend *ops, void *priv);
int mock_accel_dev_register(struct mock_accel_dev *adev);
void mock_accel_dev_unregister(struct mock_accel_dev *adev);
struct mock_accel_dev *mock_accel_dev_get_by_minor(unsigned int minor);
void mock_accel_dev_get(struct mock_accel_dev *adev);
void mock_accel_dev_put(struct mock_accel_dev *adev);
int mock_accel_id_alloc(int id);
void mock_accel_dev_set_name(struct mock_accel_dev *adev);
void mock_accel_id_free(int id);
int mock_accel_vfs_unpublish(struct mock_accel_dev *pf);

/* device.c */
int mock_accel_reg_read(struct mock_accel_dev *adev, unsigned int off,
			u32 *val);
int mock_accel_read_uuid(struct mock_accel_dev *adev, u8 uuid[16]);
int mock_accel_read_memory_size(struct mock_accel_dev *adev, u64 *size);
int mock_accel_write_status(struct mock_accel_dev *adev, u32 val);
int mock_accel_set_fault(struct mock_accel_dev *adev, bool fail);
int mock_accel_passphrase(struct mock_accel_dev *adev, unsigned int count,
			  char *buf, size_t size);
int mock_accel_get_info(struct mock_accel_dev *adev,
			struct mock_accel_info *info);
ssize_t mock_accel_format_text(struct mock_accel_dev *adev, char *buf,
			       size_t size);
unsigned int mock_accel_sriov_numvfs(struct mock_accel_dev *pf);
int mock_accel_sriov_set(struct mock_accel_dev *pf, unsigned int num_vfs);

/* regs.c: the software register file */
struct mock_accel_regfile {
	union {
		__le32 words[MOCK_ACCEL_BAR_SIZE / 4];
		u8 bytes[MOCK_ACCEL_BAR_SIZE];
	};
};

void mock_accel_regfile_init(struct mock_accel_regfile *rf,
			     const u8 uuid[16], u64 memory_size, u32 caps);
u32 mock_accel_regfile_read32(struct mock_accel_regfile *rf,
			      unsigned int off);
void mock_accel_regfile_write32(struct mock_accel_regfile *rf,
				unsigned int off, u32 val);
void mock_accel_regfile_set_fault(struct mock_accel_regfile *rf, bool fail);

/* firmware.c */
extern char *mock_accel_firmware_name;
int mock_accel_wordlist_load(struct device *dev, bool at_init);
void mock_accel_wordlist_unload(void);
u32 mock_accel_wordlist_size(void);
int mock_accel_wordlist_generate(unsigned int count, char *buf, size_t size);

/* sysfs.c */
extern const struct attribute_group *mock_accel_dev_groups[];

/* what mock_accel_notify() announces: the attributes whose value changed */
#define MOCK_ACCEL_CHANGED_STATUS	BIT(0)	/* status */
#define MOCK_ACCEL_CHANGED_HEALTH	BIT(1)	/* health (and status) */
#define MOCK_ACCEL_CHANGED_SRIOV	BIT(2)	/* sriov_numvfs */

void mock_accel_notify(struct mock_accel_dev *adev, unsigned int changed);
void mock_accel_status_changed(struct mock_accel_dev *adev, u32 old, u32 new);

/* ioctl.c */
extern const struct file_operations mock_accel_fops;

/* soft.c */
/**
 * struct mock_accel_layout - the devices the module parameters ask for
 * @num_devices: PFs made at load
 * @numa_nodes: PF i goes to node i % numa_nodes
 * @memory_size: bytes per PF (a VF has memory_size / total_vfs)
 * @total_vfs: sriov_totalvfs of each PF
 * @num_vfs: VFs enabled on each PF at load
 */
struct mock_accel_layout {
	unsigned int num_devices;
	unsigned int numa_nodes;
	u64 memory_size;
	unsigned int total_vfs;
	unsigned int num_vfs;
};

int mock_accel_soft_check_params(void);
int mock_accel_soft_init(void);
void mock_accel_soft_exit(void);
bool mock_accel_backend_is_pci(void);
void mock_accel_soft_layout(struct mock_accel_layout *lay);
void mock_accel_soft_regfile_init(struct mock_accel_regfile *rf,
				  unsigned int id, int vf, u64 mem);

/* pci.c */
int mock_accel_pci_init(void);
void mock_accel_pci_exit(void);
struct pci_dev;
int mock_accel_pci_enable_vfs(struct pci_dev *pdev, unsigned int num_vfs);

/* vpci.c: the virtual PCI host bridges of backend=pci (x86) */
#ifdef CONFIG_X86
int mock_accel_vpci_init(const struct mock_accel_layout *lay);
void mock_accel_vpci_exit(void);
struct mock_accel_regfile *mock_accel_vpci_regfile(struct pci_dev *pdev,
						   int *id);
#else
static inline int mock_accel_vpci_init(const struct mock_accel_layout *lay)
{
	return -EOPNOTSUPP;
}

static inline void mock_accel_vpci_exit(void)
{
}

static inline struct mock_accel_regfile *
mock_accel_vpci_regfile(struct pci_dev *pdev, int *id)
{
	return NULL;
}
#endif

#endif /* _MOCK_ACCEL_H */
