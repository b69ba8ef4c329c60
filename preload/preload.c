/*
 * preload.c — library constructor and destructor.  The real-symbol table
 * lives in shim/real.c so the unit tests link it without the hooks.
 */
#include "hook.h"

__attribute__((constructor)) static void flp_ctor(void)
{
	flp_init();
}

/* A client that wrote and exited before switching must still deliver:
 * settle every pending connection on a normal exit. */
__attribute__((destructor)) static void flp_dtor(void)
{
	if (flp_ready)
		conn_settle_all();
}
