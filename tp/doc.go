// Package tp shards a model tensor-parallel (Megatron style, vLLM
// vocabulary) over emulated TPU devices and runs batched prefill on them.
//
// Query, key and value projections are column-parallel by heads (kv heads
// replicated when there are fewer than ranks), the attention output
// projection is row-parallel and reduced, gate and up are column-parallel,
// down is row-parallel and reduced: two AllReduces per decoder layer, both
// through one function. The embedding is replicated and the LM head
// vocab-parallel with an exact log-softmax merge. One goroutine drives each
// device and charges its simulated clock for the work it does.
package tp
