/*
 * cfg.c — configuration: defaults, FASTLOOP_* environment variables and an
 * optional file (FASTLOOP_CONFIG, lines "key = value").  Read once, in the
 * library constructor, because some servers (nginx workers) later run with
 * an emptied environment.  Every key goes through one validating setter.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/auxv.h>

#include "flp.h"

struct flp_cfg flp_cfg;

static const char *const tr_names[] = { "off", "auto", "uds", "shm" };
static const char *const lvl_names[] = { "off", "error", "warn", "info", "debug" };

const char *cfg_transport_name(int t)
{
	return t >= 0 && t < 4 ? tr_names[t] : "?";
}

void cfg_defaults(struct flp_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->transport = FLP_TR_AUTO;
	c->log_level = FLP_LOG_WARN;
	c->retain = 256 * 1024;
	c->accept_wait_us = 200;
	c->decide_wait_us = 10000;
	c->spin_us = 50;
	/* A connection stays TCP until it has proved long-lived (8 data
	 * calls: a request, a response and a close are fewer), so a short
	 * one costs what TCP costs.  0: the switch in accept() (every
	 * connection fast from its first byte, each paying the switch). */
	c->switch_after = 8;
	c->ring = 256 * 1024;
	/* tmpfs where there is one (the handshake files are mapped); a
	 * machine or container without /dev/shm uses /tmp */
	snprintf(c->dir, sizeof(c->dir), "%s/fastloop-%u",
		 access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp",
		 (unsigned)geteuid());
}

static int set_long(const char *val, long lo, long hi, long *out)
{
	char *end;
	long v;

	long mul = 1;

	errno = 0;
	v = strtol(val, &end, 0);
	if (end == val)
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	/* allow K/M suffixes for sizes */
	if (*end == 'k' || *end == 'K')
		mul = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mul = 1024 * 1024, end++;
	while (isspace((unsigned char)*end))
		end++;
	if (*end)
		return -EINVAL;
	/* range-check before multiplying: no overflow */
	if (v < lo / mul || v > hi / mul)
		return -ERANGE;
	v *= mul;
	if (v < lo || v > hi)
		return -ERANGE;
	*out = v;
	return 0;
}

static int set_enum(const char *val, const char *const *names, int n, int *out)
{
	for (int i = 0; i < n; i++)
		if (!strcasecmp(val, names[i])) {
			*out = i;
			return 0;
		}
	return -EINVAL;
}

static int set_path(const char *val, char *dst, size_t len)
{
	if (strlen(val) >= len)
		return -ENAMETOOLONG;
	if (*val && *val != '/')
		return -EINVAL;
	strcpy(dst, val);
	return 0;
}

/* The numeric keys: where each lives in struct flp_cfg and its range. */
static const struct num_key {
	const char *name;
	size_t off;
	long lo, hi;
	bool is_size;           /* size_t field, else int */
} num_keys[] = {
	{ "retain", offsetof(struct flp_cfg, retain), 0, 64L << 20, true },
	{ "accept_wait_us", offsetof(struct flp_cfg, accept_wait_us), 0, 100000, false },
	{ "decide_wait_us", offsetof(struct flp_cfg, decide_wait_us), 0, 10000000, false },
	{ "spin_us", offsetof(struct flp_cfg, spin_us), 0, 1000000, false },
	{ "switch_after", offsetof(struct flp_cfg, switch_after), 0, 1000000, false },
	{ "ring", offsetof(struct flp_cfg, ring), 4096, 64L << 20, true },
};

/*
 * Set one key.  Returns 0, or -EINVAL/-ERANGE/-ENOENT (unknown key) and
 * leaves the old value in place.
 */
int cfg_set(struct flp_cfg *c, const char *key, const char *val)
{
	long v;
	int r;

	if (!strcasecmp(key, "transport"))
		return set_enum(val, tr_names, 4, &c->transport);
	if (!strcasecmp(key, "log")) {
		r = set_enum(val, lvl_names, 5, &c->log_level);
		if (r < 0 && !strcasecmp(val, "err"))
			c->log_level = FLP_LOG_ERR, r = 0;
		return r;
	}
	if (!strcasecmp(key, "log_file"))
		return set_path(val, c->log_file, sizeof(c->log_file));
	if (!strcasecmp(key, "dir"))
		return *val ? set_path(val, c->dir, sizeof(c->dir)) : -EINVAL;
	for (size_t i = 0; i < sizeof(num_keys) / sizeof(num_keys[0]); i++) {
		const struct num_key *k = &num_keys[i];
		if (strcasecmp(key, k->name))
			continue;
		if ((r = set_long(val, k->lo, k->hi, &v)) < 0)
			return r;
		if (!strcmp(k->name, "ring") && (v & (v - 1)))
			return -EINVAL;         /* the ring masks its offsets */
		if (k->is_size)
			*(size_t *)((char *)c + k->off) = (size_t)v;
		else
			*(int *)((char *)c + k->off) = (int)v;
		return 0;
	}
	return -ENOENT;
}

static void strip(char *s)
{
	size_t n = strlen(s);

	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
}

/*
 * Read "key = value" lines; '#' starts a comment.  A bad line is reported
 * (at warn level, once per line) and skipped.  Returns 0 or -errno of the
 * open.
 */
int cfg_load_file(struct flp_cfg *c, const char *path)
{
	char line[512];
	int lineno = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *k = line, *eq, *v;
		int r;

		lineno++;
		if ((eq = strchr(k, '#')))
			*eq = 0;
		while (isspace((unsigned char)*k))
			k++;
		strip(k);
		if (!*k)
			continue;
		eq = strchr(k, '=');
		if (!eq) {
			FLP_WARN("%s:%d: expected key = value", path, lineno);
			continue;
		}
		*eq = 0;
		v = eq + 1;
		strip(k);
		while (isspace((unsigned char)*v))
			v++;
		r = cfg_set(c, k, v);
		if (r < 0)
			FLP_WARN("%s:%d: %s = %s: %s", path, lineno, k, v,
				 r == -ENOENT ? "unknown key" : strerror(-r));
	}
	fclose(f);
	return 0;
}

static const struct { const char *env, *key; } env_keys[] = {
	{ "FASTLOOP_TRANSPORT", "transport" },
	{ "FASTLOOP_LOG", "log" },
	{ "FASTLOOP_LOG_FILE", "log_file" },
	{ "FASTLOOP_DIR", "dir" },
	{ "FASTLOOP_RETAIN", "retain" },
	{ "FASTLOOP_ACCEPT_WAIT_US", "accept_wait_us" },
	{ "FASTLOOP_DECIDE_WAIT_US", "decide_wait_us" },
	{ "FASTLOOP_SPIN_US", "spin_us" },
	{ "FASTLOOP_SWITCH_AFTER", "switch_after" },
	{ "FASTLOOP_RING", "ring" },
};

/*
 * Environment first sets the log level (so that file problems can be
 * reported), then the file named by FASTLOOP_CONFIG, then the other
 * variables, which win over the file.  A setuid/setgid process ignores the
 * environment entirely, as the dynamic loader does for LD_ variables.
 */
void cfg_load_env(struct flp_cfg *c)
{
	const char *v;

	if (getauxval(AT_SECURE)) {
		c->setuid = true;
		return;
	}
	if ((v = getenv("FASTLOOP_LOG")) && cfg_set(c, "log", v) < 0)
		FLP_WARN("FASTLOOP_LOG=%s: expected off|error|warn|info|debug", v);
	if ((v = getenv("FASTLOOP_CONFIG")) && *v) {
		int r = cfg_load_file(c, v);
		if (r < 0)
			FLP_WARN("FASTLOOP_CONFIG=%s: %s", v, strerror(-r));
	}
	for (size_t i = 0; i < sizeof(env_keys) / sizeof(env_keys[0]); i++) {
		int r;

		if (!(v = getenv(env_keys[i].env)))
			continue;
		r = cfg_set(c, env_keys[i].key, v);
		if (r < 0)
			FLP_WARN("%s=%s: %s; keeping the default", env_keys[i].env,
				 v, strerror(-r));
	}
}
