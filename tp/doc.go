// Package tp shards a model tensor-parallel (Megatron style, vLLM
// vocabulary) over emulated TPU devices and runs batched prefill on them.
//
// Query, key and value projections are column-parallel by heads (kv heads
// replicated when there are fewer than ranks), the attention output
// projection is row-parallel and reduced, gate and up are column-parallel,
// down is row-parallel and reduced: two AllReduces per decoder layer, both
// through one function. The embedding and the LM head are vocab-parallel
// (one shared shard when tied): embeddings are combined by an exact f32
// exchange, the LM head's log-softmax statistics by an exact merge. One goroutine drives each
// device and charges its simulated clock for the work it does.
package tp
