/*
 * sig.c — which signal handlers ran while we waited in user space.
 *
 * A blocking call on a ring socket waits partly in user space (the spin,
 * the nap of a writer), where a signal's handler runs between two of our
 * instructions and the kernel has no system call to interrupt.  An app
 * that waits for a flag its handler sets (netperf's test timer: SIGALRM,
 * then send() must return EINTR) would wait forever.  So the handlers the
 * app installs run through a trampoline that counts deliveries per
 * thread and notes whether the handler asked for SA_RESTART; the waits
 * compare the count and answer as the kernel would: EINTR, unless the
 * handler restarts calls and the socket has no timeout.
 *
 * The app sees its own handlers: sigaction's old action and signal()'s
 * return value are what it installed.
 */
#include <signal.h>
#include <string.h>

#include "flp.h"

#define NSIG_MAX 65

struct app_action {
	struct sigaction act;   /* what the app installed */
	bool ours;              /* the kernel has our trampoline for it */
};

static struct app_action acts[NSIG_MAX];
static pthread_mutex_t sig_mu = PTHREAD_MUTEX_INITIALIZER;

/* initial-exec: read in a signal handler, where a lazy TLS allocation
 * would not be safe (we are preloaded, so the static model applies) */
static __thread unsigned tls_count __attribute__((tls_model("initial-exec")));
static __thread bool tls_restart __attribute__((tls_model("initial-exec")));

static void tramp(int sig, siginfo_t *si, void *uc)
{
	struct sigaction a;

	if (sig <= 0 || sig >= NSIG_MAX)
		return;
	a = acts[sig].act;      /* a copy: the app may change it meanwhile */
	if (a.sa_flags & SA_RESETHAND) {
		/* the kernel made it SIG_DFL: so does what the app reads */
		acts[sig].ours = false;
		acts[sig].act.sa_handler = SIG_DFL;
		acts[sig].act.sa_flags &= ~SA_SIGINFO;
	}
	tls_count++;
	tls_restart = (a.sa_flags & SA_RESTART) != 0;
	if (a.sa_flags & SA_SIGINFO) {
		if (a.sa_sigaction)
			a.sa_sigaction(sig, si, uc);
	} else if (a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN && a.sa_handler) {
		a.sa_handler(sig);
	}
}

static bool is_function(const struct sigaction *a)
{
	return (a->sa_flags & SA_SIGINFO) ? a->sa_sigaction != NULL :
	       (a->sa_handler != SIG_DFL && a->sa_handler != SIG_IGN);
}

/*
 * sigaction for the app: a function handler is installed as our
 * trampoline with the app's mask and flags (SA_RESTART keeps its meaning
 * for real system calls); SIG_DFL and SIG_IGN go to the kernel as they
 * are.  Returns 0 or -errno.
 */
int sig_action(int sig, const struct sigaction *act, struct sigaction *old)
{
	struct sigaction k, prev;
	int r;

	if (sig <= 0 || sig >= NSIG_MAX || sig == SIGKILL || sig == SIGSTOP)
		return flp_real.sigaction(sig, act, old) < 0 ? -errno : 0;
	pthread_mutex_lock(&sig_mu);
	if (act && is_function(act)) {
		k = *act;
		k.sa_flags |= SA_SIGINFO;
		k.sa_sigaction = tramp;
		r = flp_real.sigaction(sig, &k, &prev);
	} else {
		r = flp_real.sigaction(sig, act, &prev);
	}
	if (r < 0) {
		r = -errno;
		pthread_mutex_unlock(&sig_mu);
		return r;
	}
	if (old)
		*old = acts[sig].ours ? acts[sig].act : prev;
	if (act) {
		acts[sig].act = *act;
		acts[sig].ours = is_function(act);
	}
	pthread_mutex_unlock(&sig_mu);
	return 0;
}

/* signal(): BSD semantics, as glibc's (SA_RESTART, handler stays). */
sighandler_t sig_signal(int sig, sighandler_t h)
{
	struct sigaction a, old;

	memset(&a, 0, sizeof(a));
	a.sa_handler = h;
	a.sa_flags = SA_RESTART;
	sigemptyset(&a.sa_mask);
	if (sig > 0 && sig < NSIG_MAX)
		sigaddset(&a.sa_mask, sig);
	if (sig_action(sig, &a, &old) < 0)
		return SIG_ERR;
	return (old.sa_flags & SA_SIGINFO) ? (sighandler_t)(void *)old.sa_sigaction : old.sa_handler;
}

unsigned sig_count(void)
{
	return tls_count;
}

/*
 * A wait that began at count seq: did a handler run since, so that the
 * call must end with EINTR?  Not if it asked for SA_RESTART and the wait
 * has no timeout (the kernel restarts such a call: socket(7)).
 */
bool sig_interrupts(unsigned seq, bool has_timeout)
{
	if (tls_count == seq)
		return false;
	return !tls_restart || has_timeout;
}
