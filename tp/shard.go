package tp

import (
	"fmt"

	"github.com/equarx/equarx/model"
)

// divide returns n/d and errors when d does not divide n, as tensor-parallel
// splits that must be even (attention heads) require.
func divide(n, d int) (int, error) {
	if d <= 0 {
		return 0, fmt.Errorf("divide %d by %d: divisor must be positive", n, d)
	}
	if n%d != 0 {
		return 0, fmt.Errorf("%d is not divisible by %d", n, d)
	}
	return n / d, nil
}

// SplitRange returns the half-open range [lo, hi) of n items that rank owns
// when n is split over size ranks as evenly as possible: the first n%size
// ranks get one item more (hidden 172 over 8 ranks: 22,22,22,22,21,21,21,21).
func SplitRange(n, size, rank int) (lo, hi int) {
	q, r := n/size, n%size
	lo = rank*q + min(rank, r)
	hi = lo + q
	if rank < r {
		hi++
	}
	return lo, hi
}

// HeadShard returns the attention heads rank computes. Query heads are
// split evenly (n_heads must be divisible by tp). Each rank then holds the
// kv heads its query heads read: with n_kv_heads >= tp this is an even split
// of the kv heads, with fewer kv heads than ranks each kv head is replicated
// on the tp/n_kv_heads ranks that share it.
func HeadShard(cfg model.Config, size, rank int) (model.HeadShard, error) {
	nq, err := divide(cfg.Heads, size)
	if err != nil {
		return model.HeadShard{}, fmt.Errorf("tp %d: n_heads: %w", size, err)
	}
	group := cfg.Heads / cfg.KVHeads
	qFirst := rank * nq
	kvFirst := qFirst / group
	kvLast := (qFirst + nq - 1) / group
	return model.HeadShard{QHeads: nq, QFirst: qFirst, KVHeads: kvLast - kvFirst + 1, KVFirst: kvFirst}, nil
}
