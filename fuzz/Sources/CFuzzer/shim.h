// libFuzzer's driver, for a program with its own main (SwiftPM renames an
// executable's main, so libFuzzer's cannot be used). Linked by -sanitize=fuzzer.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
