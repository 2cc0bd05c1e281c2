// SPDX-License-Identifier: GPL-2.0
/* sysfs-write: write a value in a single write() and print "ok" or strerror.
 * usage: sysfs-write FILE VALUE   ("\n" in VALUE is a newline)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	char buf[512];
	size_t n = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: sysfs-write FILE VALUE\n");
		return 2;
	}
	for (const char *p = argv[2]; *p && n < sizeof(buf); p++) {
		if (p[0] == '\\' && p[1] == 'n') { buf[n++] = '\n'; p++; }
		else buf[n++] = *p;
	}
	int fd = open(argv[1], O_WRONLY);
	if (fd < 0) { printf("open: %s\n", strerror(errno)); return 1; }
	if (write(fd, buf, n) < 0) { printf("%s\n", strerror(errno)); return 1; }
	printf("ok\n");
	return 0;
}
