/*
 * preload.c — library constructor and destructor.  The real-symbol table
 * lives in shim/real.c so the unit tests link it without the hooks.
 */
#include "hook.h"

__attribute__((constructor)) static void flp_ctor(void)
{
	flp_init();
}

/* A client that wrote and exited before switching must still deliver,
 * and a listener's handshake file should not outlive it. */
__attribute__((destructor)) static void flp_dtor(void)
{
	if (flp_ready)
		conn_at_exit();
}
