// SPDX-License-Identifier: MIT
/*
 * The pod sandbox's process (the "pause" image of the offline kind node): it holds the pod's
 * namespaces, reaps the zombies a shared PID namespace leaves to it, and exits on SIGINT or
 * SIGTERM. Built statically here (no image can be pulled on the CI machines).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
	_exit(128 + sig);
}

static void on_child(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(int argc, char **argv)
{
	struct sigaction stop = { .sa_handler = on_stop };
	struct sigaction child = { .sa_handler = on_child, .sa_flags = SA_NOCLDSTOP };

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		puts("mock-accel pause");
		return 0;
	}
	if (getpid() != 1)
		fprintf(stderr, "pause: warning: not pid 1\n");
	if (sigaction(SIGINT, &stop, NULL) || sigaction(SIGTERM, &stop, NULL) ||
	    sigaction(SIGCHLD, &child, NULL)) {
		perror("pause: sigaction");
		return 1;
	}
	for (;;)
		pause();
	return 0;
}
