// SPDX-License-Identifier: MIT
/*
 * The guest node's ioctl pod (tests/vmnode): open a mock-accel device for writing and call
 * MOCK_ACCEL_IOC_PASSPHRASE (kmod/ABI.md), print "passphrase: <words>". Static, in an image
 * FROM scratch of under 1 MiB, so that the node imports it in a second under TCG.
 * Usage: passphrase [/dev/mockN [words]]. Without a device, the one a claim gave the container
 * ($MOCK_ACCEL_DEVICE_PATH, from the driver's CDI spec), and its $MOCK_ACCEL_UUID is printed
 * first. Exit 1 with the error when open or the ioctl fails, 2 on bad arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/mock_accel.h>

int main(int argc, char **argv)
{
	struct mock_accel_passphrase arg = { 0 };
	const char *path = argc > 1 ? argv[1] : getenv("MOCK_ACCEL_DEVICE_PATH");
	const char *uuid = getenv("MOCK_ACCEL_UUID");
	char *end;
	long words = 0;
	int fd;

	if (argc > 3 || !path || !*path) {
		fputs("usage: passphrase [/dev/mockN [words]] (no device given or claimed)\n",
		      stderr);
		return 2;
	}
	if (argc == 1)
		printf("MOCK_ACCEL_UUID=%s\nMOCK_ACCEL_DEVICE_PATH=%s\n", uuid ? uuid : "", path);
	if (argc == 3) {
		words = strtol(argv[2], &end, 10);
		if (*end || words < 1 || words > MOCK_ACCEL_PASSPHRASE_MAX_WORDS) {
			fprintf(stderr, "passphrase: words must be 1..%d, not %s\n",
				MOCK_ACCEL_PASSPHRASE_MAX_WORDS, argv[2]);
			return 2;
		}
	}
	arg.word_count = (__u8)words;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "passphrase: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (ioctl(fd, MOCK_ACCEL_IOC_PASSPHRASE, &arg)) {
		fprintf(stderr, "passphrase: ioctl %s: %s\n", path, strerror(errno));
		close(fd);
		return 1;
	}
	close(fd);
	arg.passphrase[sizeof(arg.passphrase) - 1] = '\0';
	printf("passphrase: %s\n", arg.passphrase);
	return 0;
}
