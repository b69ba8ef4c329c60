/*
 * log.c — leveled logging to stderr or FASTLOOP_LOG_FILE.  Writes with the
 * real write(), one write() per line so concurrent processes do not
 * interleave, preserves errno, and survives the app closing our fd (the
 * file is reopened by path; stderr is simply used as it is).
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>

#include "flp.h"

static int log_fd = -1;
static dev_t log_dev;
static ino_t log_ino;

/* Open the log file (append) at a high, close-on-exec fd number. */
void log_open(void)
{
	struct stat st;
	int fd;

	if (!flp_cfg.log_file[0])
		return;
	fd = open(flp_cfg.log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0) {
		log_dev = st.st_dev;
		log_ino = st.st_ino;
	}
	log_fd = fd;
}

/* Is log_fd still our file?  The app may have closed it or reused the
 * number; in that case reopen. */
static int log_target(void)
{
	struct stat st;

	if (!flp_cfg.log_file[0])
		return 2;
	if (log_fd >= 0 && fstat(log_fd, &st) == 0 && st.st_dev == log_dev &&
	    st.st_ino == log_ino)
		return log_fd;
	log_fd = -1;
	log_open();
	return log_fd;
}

void log_write(int level, const char *func, const char *file, int line,
	       const char *fmt, ...)
{
	static const char *const tag[] = { "", "error", "warn", "info", "debug" };
	char buf[1024];
	int saved = errno, n, fd;
	va_list ap;

	n = snprintf(buf, sizeof(buf), "fastloop[%d] ", (int)getpid());
	if (level != FLP_LOG_INFO)
		n += snprintf(buf + n, sizeof(buf) - n, "%s: %s (%s:%d): ",
			      tag[level], func, file, line);
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	fd = log_target();
	if (fd >= 0 && flp_real.write && flp_real.write(fd, buf, n) < 0) {
		/* logging must never fail the app */
	}
	errno = saved;
}

const char *flp_addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;
		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(s->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)sa;
		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(s->sin6_port));
	} else {
		snprintf(buf, len, "family-%d", sa->sa_family);
	}
	return buf;
}
