"""The Winograd matrices of Sources/CNNKernels/winograd.c, derived and checked.

For F(m, r) on n = m + r - 1 points (0, 1, -1, 2, -2 and infinity), A^T and G come from the Toom-Cook construction,
and B^T is solved for from the condition that A^T [(G g) * (B^T d)] is the correlation of d with g for every d and
g. F(4, 3) and F(2, 5) both get the same B^T. Prints the matrices as fractions and a numerical check in 2-D.

    python3 Scripts/reference/winograd_matrices.py      (needs numpy)
"""
from fractions import Fraction

import numpy as np

POINTS = [0, 1, -1, 2, -2]


def matrices(m, r):
    n = m + r - 1
    a_t, g = np.zeros((m, n)), np.zeros((n, r))
    for j, a in enumerate(POINTS[: n - 1]):
        f = np.prod([a - b for b in POINTS[: n - 1] if b != a])
        a_t[:, j] = [a ** i for i in range(m)]
        g[j] = [a ** k / f for k in range(r)]
    a_t[m - 1, n - 1] = g[n - 1, r - 1] = 1
    # sum_xi A^T[i, xi] G[xi, k] B^T[xi, j] = [j == i + k], for all i < m, k < r, j < n.
    rows, rhs = [], []
    for i in range(m):
        for k in range(r):
            for j in range(n):
                row = np.zeros((n, n))
                row[:, j] = a_t[i] * g[:, k]
                rows.append(row.ravel())
                rhs.append(float(j == i + k))
    solution, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    assert np.abs(np.array(rows) @ solution - rhs).max() < 1e-12, "no exact B^T"
    return a_t, g, solution.reshape(n, n)


def show(name, matrix):
    print(f"{name} =")
    for row in matrix:
        print("   ", "  ".join(f"{str(Fraction(x).limit_denominator(1000)):>6}" for x in row))


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    for m, r in [(4, 3), (2, 5)]:
        a_t, g, b_t = matrices(m, r)
        print(f"F({m}x{m}, {r}x{r})")
        show("A^T", a_t), show("G", g), show("B^T", b_t)
        n = m + r - 1
        d, w = rng.standard_normal((n, n)), rng.standard_normal((r, r))
        y = a_t @ ((g @ w @ g.T) * (b_t @ d @ b_t.T)) @ a_t.T
        reference = np.array([[np.sum(d[i:i + r, j:j + r] * w) for j in range(m)] for i in range(m)])
        print(f"2-D check: largest difference {np.abs(y - reference).max():.1e}\n")
