/* greet: the tiny C library the ocipkg examples publish and link. */
#ifndef GREET_H
#define GREET_H

#ifdef __cplusplus
extern "C" {
#endif

/* Functions link through a DLL's import library without dllimport, so only the export side is marked. */
#if defined(_WIN32) && defined(GREET_SHARED_BUILD)
#define GREET_API __declspec(dllexport)
#else
#define GREET_API
#endif

/* a + b, so a caller can see that a call really reached the library. */
GREET_API int greet_add(int a, int b);

/* The cube root of x: the library needs the C math library (libm), which the package records. */
GREET_API double greet_cbrt(double x);

/* The library's version and how it was built, e.g. "1.2.0 (shared)". */
GREET_API const char *greet_version(void);

#ifdef __cplusplus
}
#endif

#endif
