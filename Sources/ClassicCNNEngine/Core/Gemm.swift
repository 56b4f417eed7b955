// GEMM for the engine: the CNNKernels routine, split over threads on register-tile boundaries.
import CNNKernels

package enum Gemm {
    /// Below about half a million multiply-adds a second thread costs more than it saves (kernel-bench: 64 x 64 x 64,
    /// 262,144, ran at 93 GFLOP/s on one thread and 83 on two; 96 x 32 x 256, 786,432, at 95 and 168).
    static let splitThreshold = 1 << 19

    /// C = alpha * op(A) * op(B) + beta * C, row-major; op(A) is m x k, op(B) is k x n.
    /// Splits the larger of m and n across `threads`; each part is an independent GEMM, so the result does not
    /// depend on scheduling.
    package static func multiply(
        transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = Parallel.threads
    ) {
        let ta: Int32 = transposeA ? 1 : 0, tb: Int32 = transposeB ? 1 : 0
        let parts = m * n * k < Gemm.splitThreshold ? 1 : threads
        cnn_gemm_trace(ta, tb, Int32(m), Int32(n), Int32(k), Int32(parts))
        if parts <= 1 {
            cnn_sgemm(ta, tb, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
            return
        }
        if n >= m {
            forEachColumnShare(n, parts: parts) { j0, j1 in
                let bPart = transposeB ? b + j0 * ldb : b + j0
                cnn_sgemm(ta, tb, Int32(m), Int32(j1 - j0), Int32(k), alpha, a, Int32(lda), bPart, Int32(ldb),
                          beta, c + j0, Int32(ldc))
            }
        } else {
            // Shares on multiples of 24 rows (a multiple of every micro-kernel's height) where there are enough of
            // them to balance the threads; else on the height of the kernel that serves m rows: NT 64 x 27 x 7616
            // (VGG16's first weight gradient) split as 24 + 40 rows ran slower on 2 threads than on 1 (30 + 34 now).
            let coarse = Int(cnn_sgemm_mr())
            let mr = (m + coarse - 1) / coarse >= 4 * parts ? coarse : Int(cnn_sgemm_mr_for(Int32(m)))
            let tiles = (m + mr - 1) / mr
            Parallel.forEachChunk(tiles, chunks: parts) { _, range in
                let i0 = range.lowerBound * mr, i1 = min(m, range.upperBound * mr)
                let aPart = transposeA ? a + i0 : a + i0 * lda
                cnn_sgemm(ta, tb, Int32(i1 - i0), Int32(n), Int32(k), alpha, aPart, Int32(lda), b, Int32(ldb),
                          beta, c + i0 * ldc, Int32(ldc))
            }
        }
    }

    /// op(A) [m, k] packed once into `buffer` for several `multiply(packedA:)` calls (a layer's weights against
    /// each image's columns), so that it is not packed again for each.
    static func pack(transposeA: Bool = false, m: Int, k: Int, a: UnsafePointer<Float>, lda: Int, into buffer: inout Tensor?) -> UnsafePointer<Float> {
        let packed = Tensor.reuse(&buffer, shape: [cnn_sgemm_packed_a_size(Int32(m), Int32(k))])
        cnn_sgemm_pack_a(transposeA ? 1 : 0, Int32(m), Int32(k), a, Int32(lda), packed.data)
        return UnsafePointer(packed.data)
    }

    /// C = alpha * A * op(B) + beta * C with A [m, k] packed by `pack`; split over the columns across `threads`.
    static func multiply(
        packedA: UnsafePointer<Float>, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        b: UnsafePointer<Float>, ldb: Int, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = Parallel.threads
    ) {
        let tb: Int32 = transposeB ? 1 : 0
        let parts = m * n * k < Gemm.splitThreshold ? 1 : threads
        cnn_gemm_trace(0, tb, Int32(m), Int32(n), Int32(k), Int32(parts))
        forEachColumnShare(n, parts: parts) { j0, j1 in
            cnn_sgemm_packed(Int32(m), Int32(j1 - j0), Int32(k), alpha, packedA, tb, transposeB ? b + j0 * ldb : b + j0, Int32(ldb),
                             beta, c + j0, Int32(ldc))
        }
    }

    /// Columns [j0, j1) of n in up to `parts` shares on register-tile boundaries, run in parallel (inline for one).
    private static func forEachColumnShare(_ n: Int, parts: Int, _ body: (Int, Int) -> Void) {
        let nr = Int(cnn_sgemm_nr())
        let tiles = (n + nr - 1) / nr
        guard parts > 1 && tiles > 1 else { return body(0, n) }
        Parallel.forEachChunk(tiles, chunks: Swift.min(parts, tiles)) { _, range in
            body(range.lowerBound * nr, Swift.min(n, range.upperBound * nr))
        }
    }
}
