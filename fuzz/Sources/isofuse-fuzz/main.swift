// The fuzzer: libFuzzer's driver, each input an image file put through
// `ImageWorkout`. A crash, a hang or a broken tree promise is a finding; a
// refusal of the image is not. Arguments are libFuzzer's (see fuzz/run.sh).

import CFuzzer
#if canImport(Glibc)
import Glibc
#endif

/// One file per fuzzing process, in memory.
let imagePath = "/dev/shm/isofuse-fuzz-\(getpid()).iso"

func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let fd = open(imagePath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    precondition(fd >= 0, "cannot create \(imagePath)")
    precondition(size == 0 || write(fd, data, size) == size, "cannot write \(imagePath)")
    close(fd)
    let workout = ImageWorkout(image: imagePath)
    unlink(imagePath)   // libFuzzer ends the process by exit(): nothing after the driver runs
    if !workout.violations.isEmpty {
        fatalError("tree promise broken: \(workout.violations.prefix(3))")
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzOneInput($0, $1) })
