/*
 * init.c — once per process: resolve libc, read the configuration, find
 * who we are (pid, start time, network namespace), check the registry.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "flp.h"

bool flp_ready;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static __thread bool initialising;

static void do_init(void)
{
	struct stat st;
	const char *inh;

	initialising = true;
	flp_real_resolve();
	cfg_defaults(&flp_cfg);
	cfg_load_env(&flp_cfg);
	log_open();
	if (fdt_init() < 0) {
		FLP_WARN("cannot allocate the fd table; fast path disabled");
		flp_cfg.transport = FLP_TR_OFF;
	}
	flp_pid = getpid();
	flp_start = flp_proc_start(flp_pid);
	flp_euid = geteuid();
	if (stat("/proc/self/ns/net", &st) == 0)
		flp_netns = st.st_ino;
	if (flp_cfg.transport != FLP_TR_OFF)
		reg_dir_init();
	pthread_atfork(conn_before_fork, conn_after_fork_parent,
		       conn_after_fork_child);
	if ((inh = getenv("FASTLOOP_INHERIT")))
		conn_inherit_restore(inh);
	FLP_DBG("fastloop ready: transport=%s dir=%s retain=%zu",
		cfg_transport_name(flp_cfg.transport), flp_cfg.dir,
		flp_cfg.retain);
	initialising = false;
	__atomic_store_n(&flp_ready, true, __ATOMIC_RELEASE);
}

/* Safe to call from any hook; a hook re-entered while this thread is
 * initialising finds flp_real already resolved and goes to libc. */
void flp_init(void)
{
	if (initialising)
		return;
	pthread_once(&once, do_init);
}
