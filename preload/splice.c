/*
 * splice.c — splice(2) with a socket of ours at either end.  The kernel
 * cannot move bytes into or out of a ring, and on a not-final socket it
 * would bypass the switch: such a splice goes through a buffer, with the
 * hooks' own read and write semantics (blocking, errors, SIGPIPE).
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include "hook.h"

static bool ours(struct flp_sock *s)
{
	/* a server's socket on trial is TCP: the kernel's splice (haproxy's
	 * way) serves it, and its calls do not count towards the switch */
	return flp_is_shm(s) || (flp_slow(s) && sock_kind(s) != SK_TRIAL);
}

FLP_EXPORT ssize_t splice(int in, loff_t *off_in, int out, loff_t *off_out,
			  size_t len, unsigned flags)
{
	struct flp_sock *si = flp_enter(in), *so = fdt_get(out);
	char buf[65536];
	ssize_t r, w;

	if (!ours(si) && !ours(so))
		return flp_real.splice(in, off_in, out, off_out, len, flags);
	/* one of them is a pipe (splice needs one): an offset on it is an
	 * error, as the kernel says */
	if (len > sizeof(buf))
		len = sizeof(buf);
	if (ours(si)) {
		int cap, used = 0;
		if (off_in)
			return flp_ret(-ESPIPE);
		/* take no more than the pipe can hold now: bytes taken from
		 * the socket and refused by the pipe would be lost */
		if (!off_out && (cap = fcntl(out, F_GETPIPE_SZ)) > 0 &&
		    ioctl(out, FIONREAD, &used) == 0 &&
		    ((flags & SPLICE_F_NONBLOCK) || (fcntl(out, F_GETFL) & O_NONBLOCK))) {
			/* a page per write at worst: keep one spare */
			long room = (long)cap - used - 4096;
			if (room <= 0)
				return flp_ret(-EAGAIN);
			if ((size_t)room < len)
				len = (size_t)room;
		}
		r = recv(in, buf, len, (flags & SPLICE_F_NONBLOCK) ? MSG_DONTWAIT : 0);
		if (r <= 0)
			return r;
		w = off_out ? pwrite(out, buf, (size_t)r, *off_out) : write(out, buf, (size_t)r);
		if (w > 0 && off_out)
			*off_out += w;
		/* sized to the pipe's room above (a blocking pipe takes it
		 * all); anything short is said, not hidden */
		if (w >= 0 && w < r)
			FLP_WARN("splice: %zd bytes read from a fast socket did not fit", r - w);
		return w;
	}
	if (off_out)
		return flp_ret(-ESPIPE);
	r = off_in ? pread(in, buf, len, *off_in) : read(in, buf, len);
	if (r <= 0)
		return r;
	w = send(out, buf, (size_t)r, (flags & SPLICE_F_NONBLOCK) ? MSG_DONTWAIT : 0);
	if (w > 0 && off_in)
		*off_in += w;
	return w;
}
