"""Makes the small model fixtures the Rust tests compare against.

Run once (needs torch, transformers, tokenizers, gguf); the outputs are committed so the
tests need no Python:

    python scripts/make_fixtures.py tests/fixtures

For each tiny, randomly initialised checkpoint (a Llama with grouped-query attention and
Llama 3 rope scaling; a Qwen2 with q/k/v biases and tied embeddings) it writes a Hugging
Face folder saved by transformers itself, and `expected.safetensors` holding a left-padded
batch of token ids, its attention mask, and transformers' f32 logits for it. It also
writes `tiny-llama.gguf`, the Llama converted the way llama.cpp does (Q/K rows permuted
for interleaved RoPE), to test the GGUF loader against the same logits.
"""
import json
import os
import sys

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, PreTrainedTokenizerFast

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def make_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    corpus = [
        "What is 2 + 3? The answer is 5.",
        "Let me think step by step. First, add the numbers, then check the result.",
        "<think> reasoning </think> <answer> 42 </answer>",
        "A conversation between User and Assistant. The user asks a question.",
    ] * 50
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(corpus, trainer)
    return tok


def save_tokenizer(tok, out):
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    fast.chat_template = CHATML
    fast.save_pretrained(out)


def batch(vocab):
    g = torch.Generator().manual_seed(7)
    lens = [11, 7, 9]
    t = max(lens)
    ids = torch.zeros((len(lens), t), dtype=torch.long)
    mask = torch.zeros((len(lens), t), dtype=torch.long)
    for r, n in enumerate(lens):
        ids[r, t - n :] = torch.randint(3, vocab, (n,), generator=g)
        mask[r, t - n :] = 1
    return ids, mask


def expected(model, out, vocab):
    ids, mask = batch(vocab)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()
    from safetensors.torch import save_file

    save_file(
        {"input_ids": ids.to(torch.int64), "attention_mask": mask.to(torch.int64), "logits": logits.contiguous()},
        os.path.join(out, "expected.safetensors"),
    )


def init_random(model, seed):
    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        with torch.no_grad():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.08 * torch.randn_like(p))


def write_gguf(model_dir, cfg, tok, path):
    import gguf

    state = {}
    from safetensors.torch import load_file

    state = load_file(os.path.join(model_dir, "model.safetensors"))
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    vocab = tok.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = json.loads(tok.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in SPECIAL else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab["<|im_start|>"])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_pad_token_id(vocab["<|im_end|>"])
    w.add_chat_template(CHATML)

    def permute(t, heads):
        # llama.cpp's convert_hf_to_gguf permutation for interleaved RoPE.
        return t.reshape(heads, 2, t.shape[0] // heads // 2, *t.shape[1:]).swapaxes(1, 2).reshape(t.shape)

    names = {
        "input_layernorm.weight": "attn_norm.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    for k, v in state.items():
        v = v.float().numpy()
        if k == "model.embed_tokens.weight":
            name = "token_embd.weight"
        elif k == "model.norm.weight":
            name = "output_norm.weight"
        elif k == "lm_head.weight":
            name = "output.weight"
        else:
            _, _, layer, rest = k.split(".", 3)
            name = f"blk.{layer}.{names[rest]}"
            if rest == "self_attn.q_proj.weight":
                v = permute(v, cfg.num_attention_heads)
            elif rest == "self_attn.k_proj.weight":
                v = permute(v, cfg.num_key_value_heads)
        w.add_tensor(name, np.ascontiguousarray(v))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(root):
    tok = make_tokenizer()
    vocab = tok.get_vocab_size()
    common = dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=112,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        torch_dtype="float32",
    )
    llama_cfg = LlamaConfig(
        **common,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
    )
    qwen_cfg = Qwen2Config(**common, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True)
    for name, cls, cfg, seed in [
        ("tiny-llama", LlamaForCausalLM, llama_cfg, 1),
        ("tiny-qwen2", Qwen2ForCausalLM, qwen_cfg, 2),
    ]:
        out = os.path.join(root, name)
        os.makedirs(out, exist_ok=True)
        model = cls(cfg).eval()
        init_random(model, seed)
        model.save_pretrained(out, safe_serialization=True)
        save_tokenizer(tok, out)
        expected(model, out, vocab)
    # The GGUF fixture has no rope scaling (llama.cpp stores it as a tensor, unsupported).
    plain = LlamaConfig(**common, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
    out = os.path.join(root, "tiny-llama-plain")
    os.makedirs(out, exist_ok=True)
    model = LlamaForCausalLM(plain).eval()
    init_random(model, 3)
    model.save_pretrained(out, safe_serialization=True)
    save_tokenizer(tok, out)
    expected(model, out, vocab)
    write_gguf(out, plain, tok, os.path.join(root, "tiny-llama-plain.gguf"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
