// The engine's one source of parallelism: a fixed number of threads (`--threads`, default all cores), work split
// into contiguous chunks in a fixed order so that results are reproducible for a fixed thread count. The threads
// are a small pool in CNNKernels (parallel.c) that spins briefly between regions and sleeps when idle.
import CNNKernels
import Foundation

public enum Parallel {
    /// The number of threads the engine uses: `EngineOptions.current.threads`.
    public static var threads: Int { EngineOptions.current.threads }

    /// Calls `body(chunk, range)` for `chunks` contiguous pieces of `0..<count`, concurrently.
    /// Chunk `i` always gets the same range for the same `count` and `chunks`.
    public static func forEachChunk(_ count: Int, chunks requested: Int = threads, _ body: (Int, Range<Int>) -> Void) {
        let chunks = max(1, min(requested, count))
        if chunks == 1 {
            if count > 0 { body(0, 0..<count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var job: (Int) -> Void = { i in body(i, (i * count / chunks)..<((i + 1) * count / chunks)) }
            withUnsafeMutablePointer(to: &job) { pointer in
                cnn_parallel_run(Int32(chunks), Int32(threads), { context, chunk in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(chunk))
                }, pointer)
            }
        }
    }
}

extension Parallel {
    /// Splits `0..<count` into at most `threads` slices of at least `grain` elements each and runs them concurrently:
    /// for element-wise work, where a thread is worth waking only for a large enough slice.
    public static func forEachSlice(_ count: Int, grain: Int = 1 << 15, _ body: (Range<Int>) -> Void) {
        forEachChunk(count, chunks: min(threads, max(1, count / grain))) { _, range in body(range) }
    }
}
