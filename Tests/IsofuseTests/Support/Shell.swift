// Running external programs (xorriso, genisoimage, setfattr) from tests.

import Foundation

/// Runs a program (searched in PATH) and captures output. Throws on spawn failure only.
enum Shell {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// `environment` is added to (and overrides) this process's environment.
    /// stdin, stdout and stderr are temporary files rather than pipes: the child
    /// can never block on a full pipe, and a child that ignores its input cannot
    /// kill the test process with SIGPIPE.
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:], input: Data? = nil) throws -> Result {
        guard let program = arguments.first else { throw Failure(description: "Shell.run: no program given") }
        let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let files = try CaptureFiles(input: input ?? Data())
        defer { files.remove() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executable(program, searchPath: merged["PATH"]))
        process.arguments = Array(arguments.dropFirst())
        process.environment = merged
        process.standardInput = try FileHandle(forReadingFrom: files.stdin)
        process.standardOutput = try FileHandle(forWritingTo: files.stdout)
        process.standardError = try FileHandle(forWritingTo: files.stderr)
        try process.run()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: try files.read(files.stdout), stderr: try files.read(files.stderr))
    }

    /// Like run, but throws (with stderr in the message) when status != 0.
    @discardableResult
    static func check(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let result = try run(arguments, environment: environment)
        guard result.status == 0 else {
            throw Failure(description: "\(arguments.joined(separator: " ")) exited with status \(result.status):\n\(result.stderr)")
        }
        return result
    }

    /// The path of `program`: itself when it contains a slash, else the first
    /// executable of that name in `searchPath` (as a shell would find it).
    static func executable(_ program: String, searchPath: String?) throws -> String {
        if program.contains("/") { return program }
        let directories = (searchPath ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
        guard let found = directories.map({ "\($0)/\(program)" }).first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw Failure(description: "\(program): not found in PATH")
        }
        return found
    }
}

/// The three files standing in for a child's standard streams.
private struct CaptureFiles {
    let directory: URL
    var stdin: URL { directory.appendingPathComponent("stdin") }
    var stdout: URL { directory.appendingPathComponent("stdout") }
    var stderr: URL { directory.appendingPathComponent("stderr") }

    init(input: Data) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("isofuse-shell-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try input.write(to: stdin)
        try Data().write(to: stdout)
        try Data().write(to: stderr)
    }

    /// Output as text; bytes that are not UTF-8 become U+FFFD rather than failing.
    func read(_ file: URL) throws -> String {
        String(decoding: try Data(contentsOf: file), as: UTF8.self)
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }
}
