"""The backward pass of every Qwen decoder minillm runs: one file per file of ``minillm/model``, same names.

Each piece is a pair, as in llm.c: ``*_forward`` runs the inference code of ``minillm/model`` and keeps what the
backward needs; ``*_backward`` takes the upstream gradient plus what the forward computed and returns the
gradient of its input and of its weights. Elementary pieces need nothing saved beyond their inputs, so their
forward is the inference function itself. The map (forward -> backward: what it needs):

    model/embedding.py    embed                 -> embedding.embed_backward             ids (scatter-add into [V, D])
    model/norm.py         rms_norm              -> norm.rms_norm_backward               x (r is recomputed)
    model/rope.py         apply_rope            -> rope.apply_rope_backward             cos, sin (rotate back)
    model/linear.py       linear                -> linear.linear_backward               x
    model/activations.py  softmax               -> activations.softmax_backward         probs
                          silu                  -> activations.silu_backward            u
    model/attention.py    scaled_dot_product_attention
                                                -> attention.scaled_dot_product_attention_backward
                                                                                        q, k, v (rotated), probs
                          self_attention        -> attention.self_attention_forward / _backward
                                                   AttentionActivations: x, q/k before q/k-norm (Qwen3),
                                                   q/k rotated, v, probs, the merged heads
    model/mlp.py          swiglu_mlp            -> mlp.swiglu_mlp_forward / _backward   MLPActivations: x, gate, up
    model/block.py        decoder_layer         -> block.decoder_layer_forward / _backward
                                                   LayerActivations: x, h (the two norms' inputs) + the above
    model/transformer.py  Model.forward         -> transformer.model_forward / model_backward
                                                   ModelActivations: ids, cos/sin, layers, last x, final norm
    (training/loss.py)    cross_entropy         -> cross_entropy_backward               logits, labels

Qwen3.5, Qwen3-Next and the mixtures of experts (the derivations are in each module's docstring):

    model/delta_rule.py   recurrent_gated_delta_rule
                                                -> delta_rule.recurrent_gated_delta_rule_forward / _backward
                                                   every memory S_t (the reference: through the state, per token)
                          chunked_gated_delta_rule
                                                -> delta_rule.chunked_gated_delta_rule_forward / _backward
                                                   the memory at each chunk start (through the UT transform)
    model/conv.py         causal_conv1d         -> conv.causal_conv1d_backward          x
    model/norm.py         zero_centred_rms_norm -> norm.zero_centred_rms_norm_backward  x
                          gated_rms_norm        -> norm.gated_rms_norm_backward         x, gate
    model/gated_deltanet.py  l2_normalize       -> norm.l2_normalize_backward           x
                          gated_deltanet        -> gated_deltanet.gated_deltanet_forward / _backward
                                                   x, conv in/out, z, a, b, the delta rule's output + memories
    model/gated_attention.py gated_self_attention
                                                -> gated_attention.gated_self_attention_forward / _backward
    model/moe.py          sparse_moe_block      -> moe.sparse_moe_block_forward / _backward
                                                   x, router probs, the choices, each expert's gate|up
                          (transformers)        -> moe.load_balancing_loss                the router aux loss
    model/hybrid.py       hybrid_decoder_layer  -> hybrid.hybrid_decoder_layer_forward / _backward

Memory (dense layers): per token and layer the forward keeps D (x) + D (normed x) + [Qwen3: H*Dh + K*Dh, q and k before their
norm] + H*Dh + 2*K*Dh (rotated q, k; v) + H*T (probs) + H*Dh (merged) + D (h) + D (normed h) + 2*F (gate, up)
floats. The backward strictly needs all but the two normed copies and the rotated q, k (cheap element-wise
functions of what is kept), i.e. within 1.3x of the minimum at the benchmark's shape; the attention
probabilities (H*T per token) dominate at long contexts. ``activation_bytes`` counts what is kept.
A Gated DeltaNet layer keeps, per token, D + 2C + 2 Hv Dv + 2 Hv floats plus one memory per 64-token chunk
(Hv Dk Dv / 64 per token): no T x T array, so its memory per token does not grow with the context
(docs/TRAINING_HYBRID.md).

Everything is float32 when the model is; the functions keep the dtype of their inputs, so the tests run the
same code in float64 against finite differences.
"""

from .transformer import ModelActivations, activation_bytes, loss_and_grads, model_backward, model_forward

__all__ = ["loss_and_grads", "model_forward", "model_backward", "ModelActivations", "activation_bytes"]
