// Swift's Mutex, made visible to ThreadSanitizer. On Linux the lock inside
// Synchronization's Mutex is not instrumented, so `swift build
// --sanitize=thread` reports every access it guards as a race; telling
// ThreadSanitizer that a critical section begins and ends (no-ops in other
// builds) leaves it the races that are real.

import CLinux
import Synchronization

public final class VisibleMutex<Value: ~Copyable>: Sendable {
    @usableFromInline let mutex: Mutex<Value>

    public init(_ value: consuming sending Value) {
        mutex = Mutex(value)
    }

    @inlinable
    public func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        let address = Unmanaged.passUnretained(self).toOpaque()
        return try mutex.withLock { (value: inout sending Value) throws(E) -> sending Result in
            isofuse_tsan_acquire(address)
            defer { isofuse_tsan_release(address) }
            return try body(&value)
        }
    }
}
