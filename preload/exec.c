/*
 * exec.c — the exec family.  Before the image is replaced, every
 * not-final socket is decided, and the fast sockets and listeners that
 * survive the exec are described in FASTLOOP_INHERIT for the new image.
 * glibc's execv/execvp/execl* call execve internally (not through the
 * PLT), so each is hooked by name.  posix_spawn is not (documented).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hook.h"

extern char **environ;

/* envp plus our variable; NULL if nothing to add (use envp as is). */
static char **with_inherit(char *const envp[], char **var)
{
	size_t n = 0, k = 0;
	char **out;

	*var = conn_inherit_env();
	if (!*var)
		return NULL;
	while (envp && envp[n])
		n++;
	out = malloc((n + 2) * sizeof(*out));
	if (!out) {
		free(*var);
		*var = NULL;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (strncmp(envp[i], "FASTLOOP_INHERIT=", 17))
			out[k++] = envp[i];
	out[k++] = *var;
	out[k] = NULL;
	return out;
}

#define WITH_ENV(envp, call)                                              \
	do {                                                              \
		char *var_, **env_;                                       \
		int r_, e_;                                               \
		flp_enter(-1);                                            \
		env_ = with_inherit((envp), &var_);                       \
		r_ = (call);                                              \
		e_ = errno;                                               \
		free(env_);                                               \
		free(var_);                                               \
		errno = e_;                                               \
		return r_;                                                \
	} while (0)

#define ENVP(envp) (env_ ? env_ : (char **)(envp))

FLP_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	WITH_ENV(envp, flp_real.execve(path, argv, ENVP(envp)));
}

FLP_EXPORT int execv(const char *path, char *const argv[])
{
	WITH_ENV(environ, flp_real.execve(path, argv, ENVP(environ)));
}

FLP_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	WITH_ENV(envp, flp_real.execvpe(file, argv, ENVP(envp)));
}

FLP_EXPORT int execvp(const char *file, char *const argv[])
{
	WITH_ENV(environ, flp_real.execvpe(file, argv, ENVP(environ)));
}

FLP_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	WITH_ENV(envp, flp_real.fexecve(fd, argv, ENVP(envp)));
}

FLP_EXPORT int execveat(int dirfd, const char *path, char *const argv[],
			char *const envp[], int flags)
{
	if (!flp_real.execveat) {
		errno = ENOSYS;
		return -1;
	}
	WITH_ENV(envp, flp_real.execveat(dirfd, path, argv, ENVP(envp), flags));
}

/* Collect execl-style arguments (and, for execle, the envp after NULL). */
#define COLLECT(first, ap, argv, n)                                       \
	do {                                                              \
		va_list c_;                                               \
		va_copy(c_, ap);                                          \
		for (n = 1; va_arg(c_, char *); n++)                      \
			;                                                 \
		va_end(c_);                                               \
		argv = alloca((n + 1) * sizeof(char *));                  \
		argv[0] = (char *)(first);                                \
		for (size_t i_ = 1; i_ <= n; i_++)                        \
			argv[i_] = va_arg(ap, char *);                    \
	} while (0)

FLP_EXPORT int execl(const char *path, const char *arg, ...)
{
	char **argv;
	size_t n;
	va_list ap;

	va_start(ap, arg);
	COLLECT(arg, ap, argv, n);
	va_end(ap);
	return execv(path, argv);
}

FLP_EXPORT int execlp(const char *file, const char *arg, ...)
{
	char **argv;
	size_t n;
	va_list ap;

	va_start(ap, arg);
	COLLECT(arg, ap, argv, n);
	va_end(ap);
	return execvp(file, argv);
}

FLP_EXPORT int execle(const char *path, const char *arg, ...)
{
	char **argv, **envp;
	size_t n;
	va_list ap;

	va_start(ap, arg);
	COLLECT(arg, ap, argv, n);
	envp = va_arg(ap, char **);
	va_end(ap);
	return execve(path, argv, envp);
}
