"""The plain layer: every idea of the model on one screen. Start reading here.

Each module holds one idea as one function a learner reads top to bottom (about 60 lines at most): NumPy
only, a shape on every line that makes an array, nothing clever. Each is tested equal to the engine (the
real modules in minillm/model, minillm/generation, minillm/backward, minillm/training) on the bundled
checkpoints, so the two can never drift. The engine adds what real use needs: batches, caches, validation,
speed.

Reading order (docs/LEARNING_PATH.md has the line counts and the engine modules each one equals):

    ops.py          rms_norm, softmax, silu, ...   the one-line formulas the others share
    forward.py      plain_forward                  the dense forward pass (Qwen2 / Qwen3), with a KV cache
    generate.py     plain_sample, plain_generate   temperature, top-k, top-p; prefill then one token a step
    backward.py     plain_layer_backward           one dense layer, backwards (and rms_norm_backward)
    train_step.py   plain_loss_and_grads           the loss and the gradient of every checkpoint tensor
                    plain_adamw_step               one AdamW update
    moe.py          plain_moe_block                a mixture of experts: router, top-k, experts, shared expert
    deltanet.py     plain_gated_deltanet           Gated DeltaNet (Qwen3.5's linear attention), token by token
    hybrid.py       plain_hybrid_forward           a whole Qwen3.5 / Qwen3-Next: DeltaNet + gated attention
    deltanet_backward.py  deltanet_backward        how the delta rule learns: its backward, token by token
    lora.py               lora_linear              LoRA: a frozen projection plus a trained low-rank path, both ways
    vision.py             image_to_tokens          how an image becomes tokens: patches, positions, ViT blocks, merger
    data_parallel.py      data_parallel_loss_and_grads   N workers, one gradient: each its rows, weighed and summed
    ring_allreduce.py     ring_allreduce           how N workers sum their gradients, 2(N-1)/N of a buffer each
    zero1.py              zero1_adamw_step         ZeRO-1: each worker keeps and updates 1/N of AdamW's moments
"""
