// SPDX-License-Identifier: GPL-2.0
/* mock-accel-ioctl: exercise the ioctls and read() of a /dev/mock* node.
 * usage: mock-accel-ioctl /dev/mockN | fd N
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/mock_accel.h>

static void pp(int fd, int count)
{
	struct mock_accel_passphrase p;
	memset(&p, 0, sizeof(p));
	p.word_count = count;
	if (ioctl(fd, MOCK_ACCEL_IOC_PASSPHRASE, &p))
		printf("PASSPHRASE(%d) err=%s\n", count, strerror(errno));
	else
		printf("PASSPHRASE(%d) ok %s\n", count, p.passphrase);
}

int main(int argc, char **argv)
{
	int fd;
	__u32 st;
	struct mock_accel_info in;

	if (argc < 2) return 2;
	if (!strcmp(argv[1], "fd"))
		fd = atoi(argv[2]);
	else
		fd = open(argv[1], O_RDWR);	/* PASSPHRASE needs a writable open */
	if (fd < 0) { printf("open err=%s\n", strerror(errno)); return 1; }
	printf("sizes %zu %zu\n", sizeof(struct mock_accel_passphrase), sizeof(struct mock_accel_info));
	if (ioctl(fd, MOCK_ACCEL_IOC_STATUS, &st)) printf("STATUS err=%s\n", strerror(errno));
	else printf("STATUS ok 0x%08x\n", st);
	pp(fd, 0); pp(fd, 1); pp(fd, 12); pp(fd, 13); pp(fd, 255);
	memset(&in, 0xaa, sizeof(in));
	if (ioctl(fd, MOCK_ACCEL_IOC_INFO, &in)) printf("INFO err=%s\n", strerror(errno));
	else {
		printf("INFO ok name=%s physfn=%s pci=%s root=%s mem=%llu node=%d caps=0x%x status=0x%x fw=0x%x rev=%u wl=%u/%u tvfs=%u nvfs=%u type=%u health=%u res0=%u\n",
		       in.name, in.physfn, in.pci_address, in.pcie_root, (unsigned long long)in.memory_size,
		       in.numa_node, in.capabilities, in.status, in.fw_version, in.revision,
		       in.wordlist_size, in.wordlist_loaded, in.sriov_totalvfs, in.sriov_numvfs,
		       in.device_type, in.health, in.reserved0);
		printf("INFO uuid=");
		for (int i = 0; i < 16; i++) printf("%02x", in.uuid[i]);
		printf("\n");
	}
	if (ioctl(fd, MOCK_ACCEL_IOC_STATUS, (void *)8) == 0) printf("EFAULT-STATUS unexpected ok\n");
	else printf("EFAULT-STATUS err=%s\n", strerror(errno));
	if (ioctl(fd, MOCK_ACCEL_IOC_PASSPHRASE, (void *)8) == 0) printf("EFAULT-PP unexpected ok\n");
	else printf("EFAULT-PP err=%s\n", strerror(errno));
	if (ioctl(fd, MOCK_ACCEL_IOC_INFO, (void *)8) == 0) printf("EFAULT-INFO unexpected ok\n");
	else printf("EFAULT-INFO err=%s\n", strerror(errno));
	if (ioctl(fd, _IO('M', 9), 0) == 0) printf("ENOTTY unexpected ok\n");
	else printf("UNKNOWN err=%s\n", strerror(errno));
	if (ioctl(fd, _IOR('X', 1, __u32), &st) == 0) printf("ENOTTY2 unexpected ok\n");
	else printf("UNKNOWN2 err=%s\n", strerror(errno));
	{
		char buf[2048]; ssize_t n; size_t tot = 0;
		while ((n = read(fd, buf + tot, 7)) > 0) tot += n;
		if (n < 0) printf("READ err=%s\n", strerror(errno));
		else { buf[tot] = 0; printf("READ %zu bytes:\n%s", tot, buf); }
	}
	return 0;
}
