/*
 * main.c — the unit runner: one SRunner over every module's suite.
 *
 * The engine is linked as a static library without the exported hooks, so
 * the runner does by hand what the library constructor would: resolve
 * libc, set defaults (quiet unless FASTLOOP_LOG is set), build the fd
 * table, learn who we are.  Test directories go under one temporary
 * root, removed at the end even when tests failed.  Verbosity comes from
 * CK_VERBOSITY (CK_ENV); TAP goes to CK_TAP_LOG_FILE_NAME when set.  The
 * last line is "N passed, N failed"; the exit status is non-zero if
 * anything failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "suites.h"

int main(void)
{
	const char *log = getenv("FASTLOOP_LOG");
	const char *tap = getenv("CK_TAP_LOG_FILE_NAME");
	SRunner *sr;
	int run, failed;

	flp_real_resolve();
	cfg_defaults(&flp_cfg);
	if (!log)
		flp_cfg.log_level = FLP_LOG_OFF;
	else if (cfg_set(&flp_cfg, "log", log) < 0)
		fprintf(stderr, "FASTLOOP_LOG=%s: not a log level; using warn\n", log);
	if (fdt_init() < 0) {
		fprintf(stderr, "cannot allocate the fd table\n");
		return EXIT_FAILURE;
	}
	flp_pid = getpid();
	flp_start = flp_proc_start(flp_pid);
	flp_euid = geteuid();
	if (tu_root_init() < 0) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}

	sr = srunner_create(cfg_suite());
	srunner_add_suite(sr, reg_suite());
	srunner_add_suite(sr, claim_suite());
	srunner_add_suite(sr, fdt_suite());
	srunner_add_suite(sr, addr_suite());
	srunner_add_suite(sr, stat_suite());
	srunner_add_suite(sr, ring_suite());
	if (tap && *tap)
		srunner_set_tap(sr, tap);

	srunner_run_all(sr, CK_ENV);
	run = srunner_ntests_run(sr);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	tu_root_remove();
	printf("%d passed, %d failed\n", run - failed, failed);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
