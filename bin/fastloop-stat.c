/*
 * fastloop-stat — `fastloop stat`: the published listeners and the live
 * fast connections of the preloaded processes, like ss(8) for fastloop.
 *
 * It reads only what the processes publish in the registry directory:
 * the listeners' handshake files (l-*) and each process's statistics
 * file (p-*, format in shim/stat.h).  No ptrace; no root needed for one's
 * own processes; as root without --dir it reads every user's registry.
 * Files whose owner is gone are skipped (statistics files are removed);
 * a corrupt file is skipped with a warning.
 *
 *   fastloop stat [--dir DIR] [--summary] [-p]
 *
 * A connection is shown once, its two ends joined by their 4-tuples (the
 * client's local address is the server's peer and the other way round)
 * within one network namespace; an end whose other end is not found (it
 * runs as another user, has closed, or is not listed) is shown alone.
 * Bytes are what the sending end counted (the receiving end's count when
 * the sender is not found).  Ages are from CLOCK_BOOTTIME.
 *
 * Exit status: 0, 1 when there is no registry to read, 2 for bad usage.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "stat.h"

#define MAX_DIRS 64

static const char *prog = "fastloop stat";

struct end {
	struct stat_proc *p;
	struct stat_conn *c;    /* a copy in our memory */
	bool used;
};

struct row {
	const struct end *cli, *srv;
};

static struct stat_proc *procs;
static size_t nprocs, cap_procs;
static struct stat_listener *lis;
static size_t nlis, cap_lis;
static bool multi;              /* several users' registries: show users */
static int warnings;

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
	void *q;

	if (n < *cap)
		return p;
	*cap = *cap ? 2 * *cap : 16;
	q = realloc(p, *cap * size);
	if (!q) {
		fprintf(stderr, "%s: out of memory\n", prog);
		exit(1);
	}
	return q;
}

static void usage(FILE *f, int code)
{
	fprintf(f,
		"usage: fastloop stat [--dir DIR] [--summary] [-p]\n"
		"  (no option)   listeners and live connections of preloaded processes\n"
		"  --summary     connections by transport and fallback reason, summed\n"
		"                over the live processes\n"
		"  -p            the summary per process too\n"
		"  --dir DIR     registry directory (default: FASTLOOP_DIR, the dir key of\n"
		"                FASTLOOP_CONFIG, /dev/shm/fastloop-<euid>, or /tmp/...;\n"
		"                as root without --dir: every user's registry)\n");
	exit(code);
}

/* The "dir" key of the FASTLOOP_CONFIG file, as the library reads it. */
static bool config_dir(char *buf, size_t len)
{
	const char *path = getenv("FASTLOOP_CONFIG");
	char line[512];
	bool found = false;
	FILE *f;

	if (!path || !*path || !(f = fopen(path, "re")))
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *k = line, *v, *e;

		if ((e = strchr(k, '#')))
			*e = 0;
		if (!(v = strchr(k, '=')))
			continue;
		*v++ = 0;
		while (isspace((unsigned char)*k))
			k++;
		for (e = k + strlen(k); e > k && isspace((unsigned char)e[-1]); )
			*--e = 0;
		while (isspace((unsigned char)*v))
			v++;
		for (e = v + strlen(v); e > v && isspace((unsigned char)e[-1]); )
			*--e = 0;
		if (!strcasecmp(k, "dir") && *v == '/' && strlen(v) < len) {
			snprintf(buf, len, "%s", v);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* The directory the library would use; true if it was configured
 * (FASTLOOP_DIR or the config file) rather than the default. */
static bool default_dir(char *buf, size_t len)
{
	const char *v = getenv("FASTLOOP_DIR");

	if (v && *v == '/') {
		snprintf(buf, len, "%s", v);
		return true;
	}
	if (config_dir(buf, len))
		return true;
	snprintf(buf, len, "%s/fastloop-%u",
		 access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp",
		 (unsigned)geteuid());
	return false;
}

static void warn(const char *dir, const char *name, const char *why)
{
	fprintf(stderr, "%s: skipping %s/%s: %s\n", prog, dir, name, why);
	warnings++;
}

/* Read one registry directory.  Returns 0, or -errno if it cannot be
 * listed (reported by the caller). */
static int scan(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		const char *why = "?";
		int r;

		if (!strncmp(de->d_name, "p-", 2)) {
			procs = grow(procs, &cap_procs, nprocs, sizeof(*procs));
			r = stat_read_proc(dir, de->d_name, true, &procs[nprocs], &why);
			if (r > 0)
				nprocs++;
			else if (r < 0)
				warn(dir, de->d_name, why);
		} else if (!strncmp(de->d_name, "l-", 2)) {
			lis = grow(lis, &cap_lis, nlis, sizeof(*lis));
			r = stat_read_listener(dir, de->d_name, &lis[nlis], &why);
			if (r > 0)
				nlis++;
			else if (r < 0)
				warn(dir, de->d_name, why);
		}
	}
	closedir(d);
	return 0;
}

/* Is dir a directory we should read (not a symlink)?  Says why not. */
static bool dir_usable(const char *dir, bool quiet_missing)
{
	struct stat st;

	if (lstat(dir, &st) < 0) {
		if (errno != ENOENT || !quiet_missing)
			fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
		return false;
	}
	if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: %s: not a directory (or a symlink); not read\n",
			prog, dir);
		return false;
	}
	return true;
}

/* ------------------------------------------------------------ output */

/* A program name from a file or /proc: printable, never a terminal
 * control sequence. */
static const char *clean(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < len; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ?
			 '?' : s[i];
	buf[i] = 0;
	return i ? buf : "?";
}

/* starttime of pid (field 22 of /proc/PID/stat), 0 if unknown. */
static uint64_t proc_start(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long st = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (!(f = fopen(path, "re")))
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	if (!(p = strrchr(buf, ')')))
		return 0;
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u "
			  "%*d %*d %*d %*d %*d %*d %llu", &st) != 1)
		return 0;
	return st;
}

/* The program of a listener's owner, from /proc, if the pid still is
 * that process; "?" otherwise (the owner exited, a fork child holds the
 * listener). */
static const char *proc_comm(int pid, uint64_t start, char *buf, size_t len)
{
	char path[64], raw[64];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if (!start || proc_start(pid) != start || !(f = fopen(path, "re")))
		return "?";
	n = fread(raw, 1, sizeof(raw) - 1, f);
	fclose(f);
	raw[n] = 0;
	raw[strcspn(raw, "\n")] = 0;
	return clean(raw, buf, len);
}

static const char *user(uint32_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);

	if (pw)
		snprintf(buf, len, "%s", pw->pw_name);
	else
		snprintf(buf, len, "%u", uid);
	return buf;
}

static uint64_t now_boot(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *age(uint64_t since, char *buf, size_t len)
{
	uint64_t now = now_boot(), s = now > since ? (now - since) / 1000000000u : 0;

	if (s < 60)
		snprintf(buf, len, "%us", (unsigned)s);
	else if (s < 3600)
		snprintf(buf, len, "%um%02us", (unsigned)(s / 60), (unsigned)(s % 60));
	else if (s < 86400)
		snprintf(buf, len, "%uh%02um", (unsigned)(s / 3600), (unsigned)(s / 60 % 60));
	else
		snprintf(buf, len, "%ud%02uh", (unsigned)(s / 86400), (unsigned)(s / 3600 % 24));
	return buf;
}

static int cmp_proc(const void *a, const void *b)
{
	const struct stat_proc *x = a, *y = b;

	return x->hdr.pid < y->hdr.pid ? -1 : x->hdr.pid > y->hdr.pid;
}

static int cmp_lis(const void *a, const void *b)
{
	const struct stat_listener *x = a, *y = b;

	if (x->bound.port != y->bound.port)
		return x->bound.port < y->bound.port ? -1 : 1;
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static void print_listeners(void)
{
	char a[80], c[32], u[32];

	if (nlis)
		qsort(lis, nlis, sizeof(*lis), cmp_lis);
	printf("Listeners: %zu\n", nlis);
	if (!nlis)
		return;
	printf("  %s%-34s %-8s %s\n", multi ? "USER       " : "", "ADDRESS", "PID",
	       "PROGRAM");
	for (size_t i = 0; i < nlis; i++) {
		if (multi)
			printf("  %-10s ", user(lis[i].uid, u, sizeof(u)));
		else
			printf("  ");
		stat_reg_addr_str(&lis[i].bound, a, sizeof(a));
		if (lis[i].v6only)
			strncat(a, " v6only", sizeof(a) - strlen(a) - 1);
		printf("%-34s %-8d %s\n", a, (int)lis[i].pid,
		       proc_comm(lis[i].pid, lis[i].start, c, sizeof(c)));
	}
}

/* "4242/iperf3" for the end's process, "-" when there is no such end. */
static const char *who(const struct end *e, char *buf, size_t len)
{
	char c[STAT_COMM];

	if (!e)
		return "-";
	snprintf(buf, len, "%d/%s", (int)e->p->hdr.pid, clean(e->p->hdr.comm, c, sizeof(c)));
	return buf;
}

static uint16_t row_port(const struct row *r, bool server_side)
{
	if (server_side)
		return r->srv ? r->srv->c->local.port : r->cli->c->peer.port;
	return r->cli ? r->cli->c->local.port : r->srv->c->peer.port;
}

static int cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	uint16_t xs = row_port(x, true), ys = row_port(y, true);
	uint16_t xc = row_port(x, false), yc = row_port(y, false);

	if (xs != ys)
		return xs < ys ? -1 : 1;
	return xc < yc ? -1 : xc > yc;
}

static bool joined(const struct end *cli, const struct end *srv)
{
	return cli->p->hdr.netns == srv->p->hdr.netns &&
	       stat_addr_eq(&cli->c->local, &srv->c->peer) &&
	       stat_addr_eq(&cli->c->peer, &srv->c->local);
}

static void print_connections(void)
{
	struct end *ends = NULL;
	struct row *rows = NULL;
	size_t nends = 0, nrows = 0, k = 0, alone = 0;
	char ca[80], sa[80], cw[40], sw[40], ag[32], u[32];

	for (size_t i = 0; i < nprocs; i++)
		nends += procs[i].nconns;
	if (nends && (!(ends = calloc(nends, sizeof(*ends))) ||
		      !(rows = calloc(nends, sizeof(*rows))))) {
		fprintf(stderr, "%s: out of memory\n", prog);
		exit(1);
	}
	for (size_t i = 0; i < nprocs; i++)
		for (unsigned j = 0; j < procs[i].nconns; j++)
			ends[k++] = (struct end){ &procs[i], &procs[i].conns[j], false };
	/* each server end with the first unused client end of its 4-tuple */
	for (size_t i = 0; i < nends; i++) {
		if (!ends[i].c->server)
			continue;
		rows[nrows].srv = &ends[i];
		for (size_t j = 0; j < nends; j++)
			if (!ends[j].c->server && !ends[j].used && joined(&ends[j], &ends[i])) {
				ends[j].used = true;
				rows[nrows].cli = &ends[j];
				break;
			}
		alone += !rows[nrows].cli;
		nrows++;
	}
	for (size_t i = 0; i < nends; i++)
		if (!ends[i].c->server && !ends[i].used) {
			rows[nrows++].cli = &ends[i];
			alone++;
		}
	if (nrows)
		qsort(rows, nrows, sizeof(*rows), cmp_row);

	printf("Connections: %zu", nrows);
	if (alone)
		printf(" (%zu with the other end not found)", alone);
	printf("\n");
	if (!nrows)
		goto out;
	printf("  %s%-9s %-28s %-22s %-28s %-22s %13s %13s %s\n",
	       multi ? "USER       " : "", "TRANSPORT", "CLIENT", "PID/PROGRAM",
	       "SERVER", "PID/PROGRAM", "BYTES C>S", "BYTES S>C", "AGE");
	for (size_t i = 0; i < nrows; i++) {
		const struct end *c = rows[i].cli, *s = rows[i].srv;
		const struct end *any = c ? c : s;
		uint64_t since = any->c->since, cs, sc;

		if (c && s && s->c->since < since)
			since = s->c->since;
		stat_addr_str(c ? &c->c->local : &s->c->peer, ca, sizeof(ca));
		stat_addr_str(s ? &s->c->local : &c->c->peer, sa, sizeof(sa));
		cs = c ? atomic_load(&c->c->tx) : atomic_load(&s->c->rx);
		sc = s ? atomic_load(&s->c->tx) : atomic_load(&c->c->rx);
		if (multi)
			printf("  %-10s ", user(any->p->hdr.uid, u, sizeof(u)));
		else
			printf("  ");
		printf("%-9s %-28s %-22s %-28s %-22s %13llu %13llu %s\n",
		       stat_tr_name(any->c->transport), ca, who(c, cw, sizeof(cw)),
		       sa, who(s, sw, sizeof(sw)), (unsigned long long)cs,
		       (unsigned long long)sc, age(since, ag, sizeof(ag)));
	}
out:
	free(ends);
	free(rows);
}

/* Live entries of p by transport. */
static void live_by_tr(const struct stat_proc *p, uint64_t *live)
{
	for (unsigned j = 0; j < p->nconns; j++)
		live[p->conns[j].transport]++;
}

static void print_summary(bool per_proc)
{
	uint64_t tr[STAT_NTR] = { 0 }, reason[STAT_NREASON] = { 0 };
	uint64_t live[STAT_NTR] = { 0 }, unlisted = 0, nlive = 0;
	char c[STAT_COMM], u[32];

	if (per_proc) {
		printf("  %s%-8s %-16s %6s %8s", multi ? "USER       " : "", "PID",
		       "PROGRAM", "LIVE", "UNLISTED");
		for (unsigned t = 0; t < STAT_TR_OTHER; t++)
			printf(" %8s", stat_tr_name(t));
		printf("  FALLBACK REASONS\n");
	}
	for (size_t i = 0; i < nprocs; i++) {
		const struct stat_hdr *h = &procs[i].hdr;
		uint64_t l[STAT_NTR] = { 0 };
		bool any = false;

		live_by_tr(&procs[i], l);
		for (unsigned t = 0; t < STAT_NTR; t++) {
			tr[t] += h->tr[t];
			live[t] += l[t];
		}
		for (unsigned r = 0; r < STAT_NREASON; r++)
			reason[r] += h->reason[r];
		unlisted += h->unlisted;
		nlive += procs[i].nconns;
		if (!per_proc)
			continue;
		if (multi)
			printf("  %-10s ", user(h->uid, u, sizeof(u)));
		else
			printf("  ");
		printf("%-8d %-16s %6u %8llu", (int)h->pid, clean(h->comm, c, sizeof(c)),
		       procs[i].nconns, (unsigned long long)h->unlisted);
		for (unsigned t = 0; t < STAT_TR_OTHER; t++)
			printf(" %8llu", (unsigned long long)h->tr[t]);
		printf(" ");
		for (unsigned r = 0; r < STAT_NREASON; r++)
			if (h->reason[r]) {
				printf(" %s=%llu", stat_reason_name(r),
				       (unsigned long long)h->reason[r]);
				any = true;
			}
		printf("%s\n", any ? "" : " -");
	}
	if (per_proc)
		printf("\n");
	printf("Processes: %zu\n", nprocs);
	printf("Live connection ends: %llu", (unsigned long long)nlive);
	for (unsigned t = 0; t < STAT_NTR; t++)
		if (live[t])
			printf(" %s=%llu", stat_tr_name(t), (unsigned long long)live[t]);
	printf(", unlisted (table full) %llu\n", (unsigned long long)unlisted);
	printf("Connections by transport (one per end, since each process started):\n");
	for (unsigned t = 0; t < STAT_NTR; t++)
		if (t != STAT_TR_OTHER || tr[t])
			printf("  %-20s %llu\n", stat_tr_name(t), (unsigned long long)tr[t]);
	printf("Fallbacks to tcp by reason:\n");
	for (unsigned r = 0; r < STAT_NREASON; r++)
		if (r != STAT_R_OTHER || reason[r])
			printf("  %-20s %llu\n", stat_reason_name(r),
			       (unsigned long long)reason[r]);
}

/* ------------------------------------------------------------- main */

static void add_dir(char dirs[][256], int *n, const char *d)
{
	for (int i = 0; i < *n; i++)
		if (!strcmp(dirs[i], d))
			return;
	if (*n < MAX_DIRS && strlen(d) < 256)
		snprintf(dirs[(*n)++], 256, "%s", d);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "summary", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char dirs[MAX_DIRS][256];
	const char *opt_dir = NULL;
	bool summary = false, per_proc = false;
	char def[256];
	int ndirs = 0, nread = 0, o;

	while ((o = getopt_long(argc, argv, "d:sph", opts, NULL)) != -1) {
		switch (o) {
		case 'd': opt_dir = optarg; break;
		case 's': summary = true; break;
		case 'p': per_proc = summary = true; break;
		case 'h': usage(stdout, 0); break;
		default: usage(stderr, 2);
		}
	}
	if (optind < argc)
		usage(stderr, 2);

	if (opt_dir) {
		add_dir(dirs, &ndirs, opt_dir);
	} else if (geteuid() == 0) {
		static const char *const pats[] = { "/dev/shm/fastloop-*", "/tmp/fastloop-*" };
		glob_t g;

		for (int i = 0; i < 2; i++) {
			if (glob(pats[i], GLOB_NOSORT, NULL, &g) != 0)
				continue;
			for (size_t j = 0; j < g.gl_pathc; j++) {
				struct stat st;
				if (lstat(g.gl_pathv[j], &st) == 0 && S_ISDIR(st.st_mode))
					add_dir(dirs, &ndirs, g.gl_pathv[j]);
			}
			globfree(&g);
		}
		if (default_dir(def, sizeof(def)))
			add_dir(dirs, &ndirs, def);
		multi = true;
		if (!ndirs) {
			fprintf(stderr, "%s: no fastloop processes are running (no registry "
				"at /dev/shm/fastloop-* or /tmp/fastloop-*)\n", prog);
			return 1;
		}
	} else {
		default_dir(def, sizeof(def));
		add_dir(dirs, &ndirs, def);
	}

	for (int i = 0; i < ndirs; i++) {
		struct stat st;
		int r;

		if (!multi && lstat(dirs[i], &st) < 0 && errno == ENOENT) {
			fprintf(stderr, "%s: no fastloop processes of this user are running "
				"(no registry at %s)\n", prog, dirs[i]);
			return 1;
		}
		if (!dir_usable(dirs[i], multi))
			continue;
		if ((r = scan(dirs[i])) < 0) {
			fprintf(stderr, "%s: cannot read %s: %s\n", prog, dirs[i],
				strerror(-r));
			continue;
		}
		nread++;
	}
	if (!nread)
		return 1;

	if (nprocs)
		qsort(procs, nprocs, sizeof(*procs), cmp_proc);
	if (summary) {
		print_summary(per_proc);
	} else {
		print_listeners();
		printf("\n");
		print_connections();
	}
	for (size_t i = 0; i < nprocs; i++)
		stat_proc_free(&procs[i]);
	free(procs);
	free(lis);
	return 0;
}
