/*
 * signal.c — sigaction, signal.  The app's handlers run through a
 * trampoline that tells a wait on a ring socket that a signal came
 * (shim/sig.c); the app sees its own handlers.
 */
#include "hook.h"

FLP_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	flp_enter(-1);
	return (int)flp_ret(sig_action(sig, act, old));
}

FLP_EXPORT sighandler_t signal(int sig, sighandler_t h)
{
	flp_enter(-1);
	return sig_signal(sig, h);
}
