/* Stand-in for Windows' bcryptprimitives.dll, which Wine 8.0 lacks. Rust's standard
 * library imports ProcessPrng from it for random numbers (HashMap keys and the like), so
 * without it no Rust program starts under that Wine. Used only by scripts/windows-check;
 * real Windows has the DLL. RtlGenRandom (exported as SystemFunction036 by advapi32) is
 * the older documented source of the same randomness. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        /* RtlGenRandom takes a 32-bit length. */
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
