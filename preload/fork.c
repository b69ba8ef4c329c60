/*
 * fork.c — fork.  The work is in pthread_atfork handlers (registered at
 * init) so that forks we do not see by name — daemon(), system() — are
 * covered too: before forking every not-final socket is decided, so
 * parent and child agree on what each fd is.
 */
#include "hook.h"

FLP_EXPORT pid_t fork(void)
{
	flp_enter(-1);
	return flp_real.fork();
}
