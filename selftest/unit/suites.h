/*
 * suites.h — the Check suites of the unit runner (main.c) and the few
 * helpers they share (tutil.c).
 *
 * The "regressions" test cases pin engine bugs found by these suites and
 * since fixed; each says which bug it shows.
 */
#ifndef FLP_UNIT_SUITES_H
#define FLP_UNIT_SUITES_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "flp.h"

Suite *cfg_suite(void);
Suite *reg_suite(void);
Suite *claim_suite(void);
Suite *fdt_suite(void);
Suite *addr_suite(void);
Suite *stat_suite(void);
Suite *ring_suite(void);

/* The runner's root for test directories: made first, removed last. */
int tu_root_init(void);
void tu_root_remove(void);
/* Create a private (0700) directory under the root; path into buf. */
void tu_mkdtemp(char *buf, size_t len);
/* Remove a directory tree made by a test (files, subdirs, symlinks). */
void tu_rmtree(const char *dir);
/* Make dir the registry directory and initialise it (asserts success). */
void tu_use_registry(const char *dir);
/* A test case runs in a child of the runner: refresh who we are. */
void tu_proc_reset(void);
/* "1.2.3.4" or "::1" with a port, as the engine stores it. */
struct reg_addr tu_addr(const char *ip, uint16_t port);
/* Is ip assigned to an interface here (checked without the engine)? */
bool tu_is_assigned(const char *ip);
/* Should the tests exposing known engine bugs be added? */

/* A barrier in shared memory for forked contenders: each child calls
 * tu_bar_arrive() and spins until the parent's tu_bar_release(). */
struct tu_bar {
	_Atomic int ready;
	_Atomic int go;
};
struct tu_bar *tu_bar_new(void);
void tu_bar_free(struct tu_bar *b);
bool tu_bar_arrive(struct tu_bar *b);          /* child; false on timeout */
bool tu_bar_wait_ready(struct tu_bar *b, int n); /* parent; false on timeout */
void tu_bar_release(struct tu_bar *b);

/* Reap a child; its exit code, or -1 if it did not exit normally. */
int tu_reap(pid_t pid);

#endif /* FLP_UNIT_SUITES_H */
