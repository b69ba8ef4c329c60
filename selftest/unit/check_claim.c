/*
 * check_claim.c — the claim slot state machine on a real handshake file
 * (reg_publish), including races between forked processes that share its
 * MAP_SHARED mapping, as a client and prefork servers do.
 *
 * Forked children report through their exit code and never call Check.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "suites.h"

#define PORT 42345
#define CPORT 51000
#define WIN 10          /* child exit codes */
#define LOSE 20
#define LATE 11

static char dir[256];
static struct reg_map *m;
static struct reg_addr srv, cli;

static void setup(void)
{
	tu_proc_reset();
	flp_netns = 4026531988ull;
	tu_mkdtemp(dir, sizeof(dir));
	tu_use_registry(dir);
	srv = tu_addr("127.0.0.1", PORT);
	cli = tu_addr("127.0.0.1", CPORT);
	ck_assert_int_eq(reg_publish(&srv, false, &m), 0);
}

static void teardown(void)
{
	if (m)
		reg_unpublish(m);
	m = NULL;
	tu_rmtree(dir);
}

/* Announce and fill a claim for cli -> srv; the slot index, gen in *gen. */
static int open_claim(const struct reg_addr *c, uint32_t *gen)
{
	int idx = claim_announce(m, &srv, "rdv", 3, gen);

	ck_assert_int_ge(idx, 0);
	ck_assert_int_lt(idx, REG_NSLOTS);
	claim_fill(m, idx, *gen, c);
	ck_assert_uint_eq(claim_poll(m, idx, *gen), SLOT_OPEN);
	return idx;
}

START_TEST(test_announce)
{
	struct reg_addr zero = { { 0 }, 0, 0 }, other = tu_addr("127.0.0.1", PORT + 1);
	uint32_t gen = 0;
	uint64_t sw = 0;
	bool pending;
	int idx;

	idx = claim_announce(m, &srv, "\0abcde", 6, &gen);
	ck_assert_int_ge(idx, 0);
	ck_assert_int_lt(idx, REG_NSLOTS);
	ck_assert_uint_eq(gen, 1);
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_ANNOUNCED);
	ck_assert(atomic_load(&m->slots[idx].sw) == claim_sw(gen, SLOT_ANNOUNCED));
	ck_assert_int_eq(m->slots[idx].client_pid, getpid());
	ck_assert_uint_eq(m->slots[idx].client_start, flp_start);
	ck_assert_int_eq(m->slots[idx].server_pid, 0);
	ck_assert(addr_eq(&m->slots[idx].srv, &srv));
	ck_assert(!memcmp(&m->slots[idx].cli, &zero, sizeof(zero)));
	ck_assert_uint_eq(m->slots[idx].uds_len, 6);
	ck_assert(!memcmp(m->slots[idx].uds_name, "\0abcde", 6));

	/* the server sees an announcement to its port that is not yet fillable */
	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), -ENOENT);
	ck_assert(pending);
	ck_assert(sw == 0);
	/* ... but not for another port */
	ck_assert_int_eq(claim_find(m, &cli, &other, &sw, &pending), -ENOENT);
	ck_assert(!pending);
	/* an ANNOUNCED word cannot be adopted */
	ck_assert(!claim_begin_adopt(m, idx, claim_sw(gen, SLOT_ANNOUNCED)));
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_ANNOUNCED);
	/* a stale generation reads as FAILED */
	ck_assert_uint_eq(claim_poll(m, idx, gen + 1), SLOT_FAILED);
	ck_assert_uint_eq(claim_poll(m, idx, gen - 1), SLOT_FAILED);
}
END_TEST

START_TEST(test_fill_and_find)
{
	struct reg_addr x;
	uint32_t gen;
	uint64_t sw = 0;
	bool pending = true;
	int idx = open_claim(&cli, &gen);

	ck_assert(addr_eq(&m->slots[idx].cli, &cli));
	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), idx);
	ck_assert(!pending);
	ck_assert(sw == claim_sw(gen, SLOT_OPEN));

	x = tu_addr("127.0.0.1", CPORT + 1);           /* wrong client port */
	ck_assert_int_eq(claim_find(m, &x, &srv, &sw, &pending), -ENOENT);
	ck_assert(!pending);
	x = tu_addr("127.0.0.2", CPORT);               /* wrong client address */
	ck_assert_int_eq(claim_find(m, &x, &srv, &sw, &pending), -ENOENT);
	x = tu_addr("::1", CPORT);
	ck_assert_int_eq(claim_find(m, &x, &srv, &sw, &pending), -ENOENT);
	x = tu_addr("127.0.0.1", PORT + 1);            /* wrong server port */
	ck_assert_int_eq(claim_find(m, &cli, &x, &sw, &pending), -ENOENT);
	x = tu_addr("127.0.0.3", PORT);                /* wrong server address */
	ck_assert_int_eq(claim_find(m, &cli, &x, &sw, &pending), -ENOENT);
	ck_assert(!pending);
}
END_TEST

/*
 * KNOWN ENGINE BUG (shim/claim.c claim_fill, line 95): the client address
 * is written before the CAS that checks the slot is still ours.  A fill
 * with a stale generation (a slot reclaimed from under its client, e.g.
 * one whose pid is not visible from another pid namespace) fails its CAS
 * but has already rewritten the new owner's 4-tuple, so a server matches
 * the wrong connection or none.
 */
START_TEST(regress_stale_fill_rewrites_slot)
{
	struct reg_addr x = tu_addr("127.0.0.9", 9);
	uint32_t gen;
	uint64_t sw;
	bool pending;
	int idx = open_claim(&cli, &gen);

	claim_fill(m, idx, gen + 1, &x);
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_OPEN);
	ck_assert(addr_eq(&m->slots[idx].cli, &cli));
	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), idx);
	ck_assert_int_eq(claim_find(m, &x, &srv, &sw, &pending), -ENOENT);
}
END_TEST

START_TEST(test_two_claims_distinct)
{
	struct reg_addr c2 = tu_addr("127.0.0.1", CPORT + 7);
	uint32_t g1, g2;
	uint64_t sw;
	bool pending;
	int i1 = open_claim(&cli, &g1), i2 = open_claim(&c2, &g2);

	ck_assert_int_ne(i1, i2);
	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), i1);
	ck_assert(sw == claim_sw(g1, SLOT_OPEN));
	ck_assert_int_eq(claim_find(m, &c2, &srv, &sw, &pending), i2);
	ck_assert(sw == claim_sw(g2, SLOT_OPEN));
}
END_TEST

START_TEST(test_adopt)
{
	uint32_t gen;
	uint64_t sw;
	bool pending;
	int idx = open_claim(&cli, &gen);

	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), idx);
	ck_assert(claim_begin_adopt(m, idx, sw));
	ck_assert(!claim_begin_adopt(m, idx, sw));      /* once */
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_ADOPTING);
	ck_assert_int_eq(m->slots[idx].server_pid, getpid());
	/* no longer offered to other servers, and not pending either */
	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), -ENOENT);
	ck_assert(!pending);
	/* release by the client must not free a slot mid-adoption */
	claim_release(m, idx, gen);
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_ADOPTING);
	ck_assert(!claim_end_adopt(m, idx, gen + 1, true));
	ck_assert(claim_end_adopt(m, idx, gen, true));
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_TAKEN);
	ck_assert(!claim_end_adopt(m, idx, gen, true));
	ck_assert(!claim_end_adopt(m, idx, gen, false));
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_TAKEN);
	/* the server was first: revoking reports it */
	ck_assert_uint_eq(claim_revoke(m, idx, gen), SLOT_TAKEN);
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_TAKEN);
	claim_release(m, idx, gen);
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_FREE);
	ck_assert(atomic_load(&m->slots[idx].sw) == claim_sw(gen, SLOT_FREE));
}
END_TEST

START_TEST(test_adopt_fails)
{
	uint32_t gen;
	uint64_t sw;
	bool pending;
	int idx = open_claim(&cli, &gen);

	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), idx);
	ck_assert(claim_begin_adopt(m, idx, sw));
	ck_assert(claim_end_adopt(m, idx, gen, false));
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_FAILED);
	ck_assert_uint_eq(claim_revoke(m, idx, gen), SLOT_FAILED);
	claim_release(m, idx, gen);
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_FREE);
}
END_TEST

START_TEST(test_revoke)
{
	uint32_t gen, g2;
	uint64_t sw;
	bool pending;
	int idx = open_claim(&cli, &gen), i2;

	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), idx);
	ck_assert_uint_eq(claim_revoke(m, idx, gen), SLOT_REVOKED);
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_REVOKED);
	ck_assert(!claim_begin_adopt(m, idx, sw));
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_REVOKED);
	/* the server can tell "revoked" while the slot is not released */
	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), -ECANCELED);
	ck_assert(!pending);
	ck_assert_uint_eq(claim_revoke(m, idx, gen), SLOT_REVOKED);  /* idempotent */
	claim_release(m, idx, gen);
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_FREE);
	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), -ENOENT);

	/* revoking an announcement that was never filled */
	i2 = claim_announce(m, &srv, "r", 1, &g2);
	ck_assert_int_ge(i2, 0);
	ck_assert_uint_eq(claim_revoke(m, i2, g2), SLOT_REVOKED);
	claim_fill(m, i2, g2, &cli);          /* too late: stays revoked */
	ck_assert_uint_eq(claim_poll(m, i2, g2), SLOT_REVOKED);
	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), -ENOENT);
	ck_assert(!pending);
	/* a stale generation: not ours any more */
	ck_assert_uint_eq(claim_revoke(m, i2, g2 + 1), SLOT_FAILED);
	ck_assert_uint_eq(claim_poll(m, i2, g2), SLOT_REVOKED);
}
END_TEST

START_TEST(test_release_aba)
{
	uint32_t gen, g2;
	uint64_t old, sw;
	bool pending;
	int idx = open_claim(&cli, &gen), i2;

	ck_assert_int_eq(claim_find(m, &cli, &srv, &old, &pending), idx);
	claim_release(m, idx, gen);
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_FREE);
	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), -ENOENT);
	/* releasing with a wrong generation is ignored */
	claim_release(m, idx, gen + 5);
	ck_assert(atomic_load(&m->slots[idx].sw) == claim_sw(gen, SLOT_FREE));

	/* the slot is reused for the same 4-tuple with a new generation */
	i2 = open_claim(&cli, &g2);
	ck_assert_int_eq(i2, idx);
	ck_assert_uint_eq(g2, gen + 1);
	/* a server holding the old word must not take the new claim */
	ck_assert(!claim_begin_adopt(m, idx, old));
	ck_assert_uint_eq(claim_poll(m, idx, g2), SLOT_OPEN);
	ck_assert_int_eq(m->slots[idx].server_pid, 0);
	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), idx);
	ck_assert(sw == claim_sw(g2, SLOT_OPEN));
	ck_assert(sw != old);
	ck_assert(claim_begin_adopt(m, idx, sw));
	/* the old owner's calls no longer reach the slot */
	ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_FAILED);
	ck_assert_uint_eq(claim_revoke(m, idx, gen), SLOT_FAILED);
	ck_assert(!claim_end_adopt(m, idx, gen, true));
	ck_assert_uint_eq(claim_poll(m, idx, g2), SLOT_ADOPTING);
}
END_TEST

START_TEST(test_exhaustion)
{
	static bool seen[REG_NSLOTS];
	uint32_t gen[REG_NSLOTS], g;
	int idx[REG_NSLOTS], i;

	for (i = 0; i < REG_NSLOTS; i++) {
		idx[i] = claim_announce(m, &srv, "x", 1, &gen[i]);
		ck_assert_int_ge(idx[i], 0);
		ck_assert_int_lt(idx[i], REG_NSLOTS);
		ck_assert(!seen[idx[i]]);
		seen[idx[i]] = true;
	}
	ck_assert_int_eq(claim_announce(m, &srv, "x", 1, &g), -EAGAIN);
	ck_assert_int_eq(claim_announce(m, &srv, "x", 1, &g), -EAGAIN);
	/* the earlier claims are untouched */
	for (i = 0; i < REG_NSLOTS; i++)
		ck_assert_uint_eq(claim_poll(m, idx[i], gen[i]), SLOT_ANNOUNCED);
	/* one released slot is the one handed out next */
	claim_release(m, idx[100], gen[100]);
	ck_assert_int_eq(claim_announce(m, &srv, "x", 1, &g), idx[100]);
	ck_assert_uint_eq(g, gen[100] + 1);
	ck_assert_int_eq(claim_announce(m, &srv, "x", 1, &g), -EAGAIN);
}
END_TEST

/*
 * A child fills the whole table, fills one claim and stays alive until
 * told; while it lives nothing can be reclaimed; once it is dead every slot
 * except the one a server is adopting is reused.
 */
START_TEST(test_dead_client_reclaimed)
{
	int rdy[2], hold[2], first = -1, i, k;
	uint32_t gen0 = 0, g;
	struct { int idx; uint32_t gen; } info;
	uint64_t sw;
	bool pending;
	pid_t pid;

	ck_assert_int_eq(pipe(rdy), 0);
	ck_assert_int_eq(pipe(hold), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char c;

		close(rdy[0]);
		close(hold[1]);
		tu_proc_reset();
		for (i = 0; i < REG_NSLOTS; i++) {
			k = claim_announce(m, &srv, "c", 1, &g);
			if (k < 0)
				_exit(1);
			if (i == 0)
				info.idx = k, info.gen = g;
		}
		claim_fill(m, info.idx, info.gen, &cli);
		if (write(rdy[1], &info, sizeof(info)) != sizeof(info))
			_exit(2);
		if (read(hold[0], &c, 1) < 0)
			_exit(3);
		_exit(0);
	}
	close(rdy[1]);
	close(hold[0]);
	ck_assert_int_eq(read(rdy[0], &info, sizeof(info)), sizeof(info));
	close(rdy[0]);
	first = info.idx;
	gen0 = info.gen;
	ck_assert_int_eq(m->slots[first].client_pid, pid);

	/* the client lives: its slots are not ours to take */
	ck_assert_int_eq(claim_announce(m, &srv, "p", 1, &g), -EAGAIN);
	/* a server starts adopting its filled claim */
	ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), first);
	ck_assert(claim_begin_adopt(m, first, sw));

	close(hold[1]);
	ck_assert_int_eq(tu_reap(pid), 0);

	for (i = 0; i < REG_NSLOTS - 1; i++) {
		k = claim_announce(m, &srv, "p", 1, &g);
		ck_assert_int_ge(k, 0);
		ck_assert_int_ne(k, first);
		ck_assert_uint_eq(g, 2);         /* the child's gen was 1 */
		ck_assert_int_eq(m->slots[k].client_pid, getpid());
		ck_assert_uint_eq(claim_poll(m, k, g), SLOT_ANNOUNCED);
	}
	ck_assert_int_eq(claim_announce(m, &srv, "p", 1, &g), -EAGAIN);
	ck_assert_uint_eq(claim_poll(m, first, gen0), SLOT_ADOPTING);
}
END_TEST

/* A dead client's OPEN claim is also reclaimed, not only ANNOUNCED ones. */
START_TEST(test_dead_client_open_reclaimed)
{
	uint32_t g;
	pid_t pid;
	int i, k;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		tu_proc_reset();
		for (i = 0; i < REG_NSLOTS; i++) {
			k = claim_announce(m, &srv, "c", 1, &g);
			if (k < 0)
				_exit(1);
			claim_fill(m, k, g, &cli);
		}
		_exit(0);
	}
	ck_assert_int_eq(tu_reap(pid), 0);
	for (i = 0; i < REG_NSLOTS; i++)
		ck_assert(claim_state(atomic_load(&m->slots[i].sw)) == SLOT_OPEN);
	k = claim_announce(m, &srv, "p", 1, &g);
	ck_assert_int_ge(k, 0);
	ck_assert_uint_eq(g, 2);
	ck_assert_int_eq(m->slots[k].client_pid, getpid());
	ck_assert(addr_eq(&m->slots[k].cli, &(struct reg_addr){ { 0 }, 0, 0 }));
}
END_TEST

/* ----------------------------------------------------------- concurrency */

#define NCONT 8
#define CONT_ROUNDS 25

/* Child: wait at the barrier, then try to adopt with the word it was given. */
static void contender(struct tu_bar *b, int idx, uint64_t sw)
{
	tu_proc_reset();
	if (!tu_bar_arrive(b))
		_exit(3);
	_exit(claim_begin_adopt(m, idx, sw) ? WIN : LOSE);
}

START_TEST(test_race_adopt_one_winner)
{
	for (int round = 0; round < CONT_ROUNDS; round++) {
		struct tu_bar *b = tu_bar_new();
		pid_t pids[NCONT], winner = 0;
		int wins = 0, losses = 0, idx;
		uint32_t gen;
		uint64_t sw;
		bool pending;

		idx = open_claim(&cli, &gen);
		ck_assert_int_eq(claim_find(m, &cli, &srv, &sw, &pending), idx);
		for (int i = 0; i < NCONT; i++) {
			pids[i] = fork();
			ck_assert_int_ge(pids[i], 0);
			if (pids[i] == 0)
				contender(b, idx, sw);
		}
		ck_assert(tu_bar_wait_ready(b, NCONT));
		tu_bar_release(b);
		for (int i = 0; i < NCONT; i++) {
			int code = tu_reap(pids[i]);

			ck_assert_msg(code == WIN || code == LOSE,
				      "round %d: contender exit %d", round, code);
			if (code == WIN)
				wins++, winner = pids[i];
			else
				losses++;
		}
		ck_assert_msg(wins == 1, "round %d: %d winners", round, wins);
		ck_assert_int_eq(losses, NCONT - 1);
		ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_ADOPTING);
		ck_assert_int_eq(m->slots[idx].server_pid, winner);
		/* finish on the winner's behalf and recycle the slot */
		ck_assert(claim_end_adopt(m, idx, gen, true));
		claim_release(m, idx, gen);
		tu_bar_free(b);
	}
}
END_TEST

#define NSRV 4
#define REVOKE_ROUNDS 200

/* Child server: find the claim like accept() would, then try to adopt it. */
static void server(struct tu_bar *b, const struct reg_addr *c)
{
	uint64_t sw;
	bool pending;
	int idx;

	tu_proc_reset();
	if (!tu_bar_arrive(b))
		_exit(3);
	idx = claim_find(m, c, &srv, &sw, &pending);
	if (idx < 0 || !claim_begin_adopt(m, idx, sw))
		_exit(LOSE);
	_exit(claim_end_adopt(m, idx, claim_gen(sw), true) ? WIN : LATE);
}

/*
 * Rounds alternate: the client revokes before the servers start (revoke
 * must win), after one of them adopted (adopt must win), or at the same
 * moment (either, never both).  Every round: REVOKED with no adopter,
 * TAKEN with exactly one, or FAILED when the client took the slot back
 * from an adopter that had not yet announced itself (which then sees
 * end_adopt fail).
 */
START_TEST(test_race_revoke_vs_adopt)
{
	int revoked = 0, taken = 0, failed = 0;

	for (int round = 0; round < REVOKE_ROUNDS; round++) {
		struct reg_addr c = tu_addr("127.0.0.1", (uint16_t)(CPORT + round));
		struct tu_bar *b = tu_bar_new();
		int mode = round % 3, wins = 0, late = 0, idx;
		pid_t pids[NSRV];
		uint32_t gen, res = SLOT_NSTATES;

		idx = open_claim(&c, &gen);
		if (mode == 0)
			ck_assert_uint_eq(claim_revoke(m, idx, gen), SLOT_REVOKED);
		for (int i = 0; i < NSRV; i++) {
			pids[i] = fork();
			ck_assert_int_ge(pids[i], 0);
			if (pids[i] == 0)
				server(b, &c);
		}
		ck_assert(tu_bar_wait_ready(b, NSRV));
		tu_bar_release(b);
		if (mode == 0) {
			res = SLOT_REVOKED;
		} else {
			if (mode == 1) {
				/* let an adopter get through first (bounded) */
				uint64_t t0 = flp_now_us();
				while (claim_poll(m, idx, gen) == SLOT_OPEN &&
				       flp_now_us() - t0 < 5000000)
					sched_yield();
			}
			res = claim_revoke(m, idx, gen);
		}
		for (int i = 0; i < NSRV; i++) {
			int code = tu_reap(pids[i]);

			ck_assert_msg(code == WIN || code == LOSE || code == LATE,
				      "round %d: server exit %d", round, code);
			wins += code == WIN;
			late += code == LATE;
		}
		ck_assert_uint_eq(claim_poll(m, idx, gen), res);
		switch (res) {
		case SLOT_REVOKED:
			ck_assert_msg(wins == 0 && late == 0,
				      "round %d: revoked but %d adopted", round, wins);
			revoked++;
			break;
		case SLOT_TAKEN:
			ck_assert_msg(wins == 1 && late == 0,
				      "round %d: taken with %d adopters", round, wins);
			taken++;
			break;
		case SLOT_FAILED:
			ck_assert_msg(wins == 0 && late == 1,
				      "round %d: failed, %d/%d", round, wins, late);
			failed++;
			break;
		default:
			ck_abort_msg("round %d: revoke returned state %u", round, res);
		}
		if (mode == 1)  /* an adopter was through before the revoke */
			ck_assert_uint_ne(res, SLOT_REVOKED);
		claim_release(m, idx, gen);
		ck_assert_uint_eq(claim_poll(m, idx, gen), SLOT_FREE);
		tu_bar_free(b);
	}
	/* both outcomes happened (modes 0 and 1 force one each) */
	ck_assert_int_ge(revoked, 1);
	ck_assert_int_ge(taken, 1);
	ck_assert_int_eq(revoked + taken + failed, REVOKE_ROUNDS);
}
END_TEST

Suite *claim_suite(void)
{
	Suite *s = suite_create("claim");
	TCase *tc = tcase_create("states");
	TCase *tr = tcase_create("reclaim");
	TCase *tx = tcase_create("race");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_announce);
	tcase_add_test(tc, test_fill_and_find);
	tcase_add_test(tc, test_two_claims_distinct);
	tcase_add_test(tc, test_adopt);
	tcase_add_test(tc, test_adopt_fails);
	tcase_add_test(tc, test_revoke);
	tcase_add_test(tc, test_release_aba);
	tcase_add_test(tc, test_exhaustion);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tr, setup, teardown);
	tcase_set_timeout(tr, 30);
	tcase_add_test(tr, test_dead_client_reclaimed);
	tcase_add_test(tr, test_dead_client_open_reclaimed);
	suite_add_tcase(s, tr);

	tcase_add_checked_fixture(tx, setup, teardown);
	tcase_set_timeout(tx, 120);
	tcase_add_test(tx, test_race_adopt_one_winner);
	tcase_add_test(tx, test_race_revoke_vs_adopt);
	suite_add_tcase(s, tx);

	{
		TCase *tb = tcase_create("regressions");

		tcase_add_checked_fixture(tb, setup, teardown);
		tcase_add_test(tb, regress_stale_fill_rewrites_slot);
		suite_add_tcase(s, tb);
	}
	return s;
}
