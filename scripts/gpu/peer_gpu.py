"""The peer (transformers / PyTorch) on a GPU, on the workloads of `r1 bench`:
generation with 128 forced new tokens at batch 1/8/32 (T 0.7, top-p 0.95) and training
(forward + backward + AdamW) at batch 8 x 256. The same prompts and token streams as
shared/peer-bench's CPU scripts (it imports their `common`), moved to CUDA.

Usage: PEER=path/to/peer-bench MODEL_DIR=hf-folder python peer_gpu.py {gen|train} DTYPE
Prints RESULT <json>, with torch.cuda.max_memory_allocated as the memory figure.
"""
import json, os, sys, time

sys.path.insert(0, os.environ.get("PEER", "../shared/peer-bench"))
os.environ.setdefault("PEER_MODEL_DIR", os.environ.get("MODEL_DIR", ""))
from common import MODEL_DIR, make_problems, to_messages  # noqa: E402

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

WHAT = sys.argv[1]
DTYPE = {"f32": torch.float32, "bf16": torch.bfloat16}[sys.argv[2]]
dev = torch.device("cuda")
torch.manual_seed(0)


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def gen():
    tok = AutoTokenizer.from_pretrained(MODEL_DIR, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=DTYPE).to(dev).eval()
    probs = make_problems(64, 99)
    texts = [tok.apply_chat_template(to_messages(p["question"]), tokenize=False, add_generation_prompt=True)
             for p in probs]

    def run(bs, new=128):
        enc = tok(texts[:bs], return_tensors="pt", padding=True).to(dev)
        with torch.inference_mode():
            out, secs = timed(lambda: model.generate(
                **enc, do_sample=True, temperature=0.7, top_p=0.95, top_k=0, max_new_tokens=new,
                min_new_tokens=new, pad_token_id=tok.pad_token_id))
        assert out.shape[1] - enc["input_ids"].shape[1] == new
        return secs

    run(8, 8)  # warm-up
    rows = []
    for bs in (1, 8, 32):
        times = [run(bs) for _ in range(2)]
        best = min(times)
        print(f"generate batch {bs}: {[round(t, 3) for t in times]} s, best {bs * 128 / best:.1f} tok/s", flush=True)
        rows.append({"batch": bs, "seconds": times, "tok_per_s_best": bs * 128 / best})
    return rows


def train():
    B, T = 8, 256
    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=DTYPE).to(dev).train()
    model.config.use_cache = False
    ids = []
    for p in make_problems(400, 7):
        text = tok.apply_chat_template(to_messages(p["question"]) + [
            {"role": "assistant", "content": f"<think> add </think><answer>{p['answer']}</answer>"}], tokenize=False)
        ids += tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= B * T:
            break
    x = torch.tensor(ids[:B * T], device=dev).view(B, T)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)

    def step():
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    times = []
    for s in range(2 + 5):
        loss, secs = timed(step)
        print(f"train step {s}{' (warm-up)' if s < 2 else ''}: {secs:.3f} s, {B * T / secs:.0f} tok/s, "
              f"loss {loss.item():.3f}", flush=True)
        if s >= 2:
            times.append(secs)
    mean = sum(times) / len(times)
    return {"batch": B, "seq": T, "seconds": times, "tok_per_s_mean": B * T / mean}


res = {"gen": gen, "train": train}[WHAT]()
print("RESULT " + json.dumps({"what": WHAT, "dtype": sys.argv[2], "torch": torch.__version__,
                              "gpu": torch.cuda.get_device_name(0), "result": res,
                              "max_memory_allocated_mib": torch.cuda.max_memory_allocated() / 2**20}))
