/* The pod sandbox's process, as registry.k8s.io/pause does it: hold the pod's namespaces
 * until told to stop. Built static by the CRI tier (no registry here to pull pause from). */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

int main(void) {
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    for (;;) pause();
}
