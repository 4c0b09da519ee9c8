#include <cblas.h>
// mallopt: the tensor core keeps large freed blocks in the heap (see Parallel.configure).
#if __has_include(<malloc.h>)
#include <malloc.h>
#endif
