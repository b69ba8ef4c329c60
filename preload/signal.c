/*
 * signal.c — sigaction, signal.  The app's handlers run through a
 * trampoline that tells a wait on a ring socket that a signal came
 * (shim/sig.c); the app sees its own handlers.
 *
 * Before the library is initialised these go straight to glibc's
 * __sigaction: a sanitizer runtime preloaded ahead of us installs its
 * handlers through us while it starts, when initialising (dlsym) would
 * re-enter its allocator.
 */
#include <string.h>
#include "hook.h"

extern int __sigaction(int, const struct sigaction *, struct sigaction *);

/* ThreadSanitizer's runtime calls sigaction while it initialises, before
 * an instrumented function may run: these two stay uninstrumented. */
#define FLP_NO_TSAN __attribute__((no_sanitize("thread")))

static inline FLP_NO_TSAN bool early(void)
{
	return !__atomic_load_n(&flp_ready, __ATOMIC_ACQUIRE);
}

FLP_EXPORT FLP_NO_TSAN int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (early())
		return __sigaction(sig, act, old);
	return (int)flp_ret(sig_action(sig, act, old));
}

FLP_EXPORT FLP_NO_TSAN sighandler_t signal(int sig, sighandler_t h)
{
	if (early()) {
		/* glibc's BSD semantics, as sig_signal() */
		struct sigaction a, o;
		memset(&a, 0, sizeof(a));
		a.sa_handler = h;
		a.sa_flags = SA_RESTART;
		sigemptyset(&a.sa_mask);
		if (sig > 0 && sig < 65)
			sigaddset(&a.sa_mask, sig);
		return __sigaction(sig, &a, &o) < 0 ? SIG_ERR : o.sa_handler;
	}
	return sig_signal(sig, h);
}
