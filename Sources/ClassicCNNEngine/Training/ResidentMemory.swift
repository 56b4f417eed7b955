// The process's memory as the kernel counts it: resident now and at its peak (Linux: /proc/self/status; elsewhere
// unknown). Reported with every epoch, so that "memory is proportional to one batch" is a measured figure.
import Foundation

public enum ResidentMemory {
    /// (resident, peak resident) in bytes, or nil where /proc is not available.
    public static func current() -> (resident: Int, peak: Int)? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        func kilobytes(_ key: String) -> Int? {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return nil }
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        }
        guard let resident = kilobytes("VmRSS:"), let peak = kilobytes("VmHWM:") else { return nil }
        return (resident * 1024, peak * 1024)
    }
}
