"""Writes tests/fixtures/llm/: tiny random checkpoints of six families, with reference outputs.

Run once, from the repository root, in a venv with the CPU build of torch and transformers (the
tests never import either):

  python3 -m venv .venv-torch && .venv-torch/bin/pip install torch==2.13.0+cpu transformers
  .venv-torch/bin/python scripts/make_llm_fixtures.py

Made with torch 2.13.0+cpu, transformers 5.25.0, tokenizers 0.23.3 (2026-12-07). Each folder is
what `save_pretrained` writes for transformers' own PyTorch class (LlamaForCausalLM, MistralModel,
Qwen2Model, Qwen3Model, RobertaModel, XLMRobertaModel), 2 layers of width 32, every parameter
drawn at random (norm weights and biases too, so a loader that skips one fails), plus a tiny
`tokenizer.json` trained here with the tokenizers library, and `reference.npz`:
  ids, lengths     the token ids transformers' tokenizer gives each text (after the model card's
                   steps: e5-mistral appends </s>), concatenated
  hidden           each text's last hidden states run alone (unpadded), float32, concatenated
  last, mean, cls  pooled vectors (L2-normalised unless the folder's pipeline says otherwise)
What each fixture exercises:
  llama    bfloat16 weights on disk, `model.` prefix + lm_head (a *ForCausalLM save), llama3 rope
           scaling, GQA 4/2, attention and MLP biases, BOS from the post-processor
  mistral  sharded bfloat16 weights (model.safetensors.index.json), sliding_window 8 < the texts, GQA 4/1,
           </s> appended as e5-mistral's card does
  qwen2    float16 weights, q/k/v biases, linear rope scaling, no special tokens
  qwen3    q/k norms, head_dim 16 with 4 heads on width 32 (q is 64 wide), tied embeddings, a
           sentence-transformers folder (last-token Pooling + Normalize, a query prompt), EOS
           from the post-processor (as Qwen3-Embedding's tokenizer)
  roberta  float16 weights, position ids offset by padding_idx + 1, a sentence-transformers folder with mean
           pooling and no Normalize (vectors stay unnormalised)
  xlm-roberta  float16, a Unigram tokenizer with Metaspace (SentencePiece-style)
"""
from __future__ import annotations

import json
import pathlib
import shutil
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "llm"

TEXTS = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "hello",
    "Amélie (2001), une comédie à Montmartre. 千と千尋. Zürich!",
    "The ship sailed across the northern sea while the crew argued about maps, stars, storms "
    "and the price of salt in distant harbours.",
]
# Qwen3's query prompt (its config_sentence_transformers.json), prepended to a query text.
QWEN3_PROMPT = ("Instruct: Given a web search query, retrieve relevant passages that answer the "
                "query\nQuery:")
QUERY = "toy story"
# Qwen2's pre-tokenizer split (digits one by one), from its tokenizer.json; transformers 5's
# Qwen2Tokenizer rebuilds it whatever the file says, so the qwen fixtures must use it to agree.
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
              r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
CORPUS = (TEXTS + ["A 24-year-old male technician.", "The quick brown fox jumps over the lazy dog.",
                   "Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War."]) * 3


def bpe_tokenizer(specials, template, *, qwen=False):
  """A byte-level BPE (GPT-2 / Llama 3 / Qwen style) with ~320 tokens."""
  from tokenizers import (Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers,
                          processors, trainers)
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  if qwen:
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=specials,
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(CORPUS, trainer)
  if template:
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(t, tok.token_to_id(t)) for t in specials
                                         if t in template])
  else:
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
  return tok


def roberta_tokenizer():
  from tokenizers import processors
  tok = bpe_tokenizer(["<s>", "<pad>", "</s>", "<unk>"], None)
  tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
  return tok


def unigram_tokenizer():
  """SentencePiece-style Unigram with Metaspace, as XLM-R's tokenizer.json."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
  tok = Tokenizer(models.Unigram())
  tok.pre_tokenizer = pre_tokenizers.Metaspace()
  tok.decoder = decoders.Metaspace()
  trainer = trainers.UnigramTrainer(vocab_size=200, special_tokens=["<s>", "<pad>", "</s>",
                                                                     "<unk>"], unk_token="<unk>")
  tok.train_from_iterator(CORPUS, trainer)
  tok.post_processor = processors.TemplateProcessing(
      single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
  return tok


def randomise(model, seed):
  import torch
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=g)
      if "norm" in name.lower() and name.endswith("weight"):
        p.copy_(1 + 0.2 * noise)  # RMSNorm / LayerNorm gains
      else:
        p.copy_(0.15 * noise)
  return model.eval()


def write_folder(name, model, tok, *, dtype, tokenizer_config, shard=None):
  import torch
  folder = OUT / name
  shutil.rmtree(folder, ignore_errors=True)
  folder.mkdir(parents=True)
  model.to(dtype).save_pretrained(folder, max_shard_size=shard or "50GB")
  model.to(torch.float32)
  tok.save(str(folder / "tokenizer.json"))
  (folder / "tokenizer_config.json").write_text(json.dumps(
      {"tokenizer_class": "PreTrainedTokenizerFast", **tokenizer_config}, indent=1))
  for junk in folder.glob("generation_config.json"):
    junk.unlink()
  return folder


def references(folder, model_cls, *, append_eos=None, normalize=True, extra=(), **kwargs):
  """Runs transformers on each text alone (float32) and stores ids, states and pooled vectors."""
  import torch
  from transformers import AutoTokenizer
  tok = AutoTokenizer.from_pretrained(folder)
  model = model_cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager",
                                    **kwargs)
  model.eval()
  ids, hidden, last, mean, cls = [], [], [], [], []
  for text in list(TEXTS) + list(extra):
    x = tok(text)["input_ids"]
    if append_eos is not None and x[-1] != append_eos:
      x = x + [append_eos]
    with torch.no_grad():
      out = model(input_ids=torch.tensor([x]), attention_mask=torch.ones(1, len(x), dtype=torch.long),
                  output_hidden_states=True)
    # *ForCausalLM returns logits; its last hidden state (after the final norm) is the last entry.
    h = out.hidden_states[-1][0] if hasattr(out, "logits") else out.last_hidden_state[0]
    h = h.float().numpy()
    ids.append(np.array(x, np.int32))
    hidden.append(h)
    last.append(h[-1]), mean.append(h.mean(0)), cls.append(h[0])

  def unit(v):
    v = np.stack(v)
    return v / np.linalg.norm(v, axis=1, keepdims=True) if normalize else v

  np.savez_compressed(folder / "reference.npz", ids=np.concatenate(ids),
                      lengths=np.array([len(x) for x in ids], np.int32),
                      hidden=np.concatenate(hidden).astype(np.float32),
                      last=unit(last).astype(np.float32), mean=unit(mean).astype(np.float32),
                      cls=unit(cls).astype(np.float32))
  print(f"{folder.name}: {len(ids)} texts, {sum(map(len, ids))} tokens, "
        f"{sum(f.stat().st_size for f in folder.rglob('*') if f.is_file()) / 1024:.0f} KiB")


def sentence_transformers_folder(folder, *, pooling, normalize, prompts=None):
  """modules.json + 1_Pooling/config.json (+ 2_Normalize), as sentence-transformers saves them."""
  modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
             {"idx": 1, "name": "1", "path": "1_Pooling",
              "type": "sentence_transformers.models.Pooling"}]
  if normalize:
    modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize"})
    (folder / "2_Normalize").mkdir()
  (folder / "modules.json").write_text(json.dumps(modules, indent=1))
  (folder / "1_Pooling").mkdir()
  modes = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens",
           "last": "pooling_mode_lasttoken"}
  (folder / "1_Pooling" / "config.json").write_text(json.dumps(
      {"word_embedding_dimension": 32, **{v: k == pooling for k, v in modes.items()},
       "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
       "include_prompt": True}, indent=1))
  (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
  if prompts:
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": prompts, "default_prompt_name": None}, indent=1))


def main() -> int:
  import torch
  import transformers as tf
  torch.manual_seed(0)
  OUT.mkdir(parents=True, exist_ok=True)
  small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
               max_position_embeddings=128)

  # Llama (3-style): BOS via the post-processor; bf16 weights; ForCausalLM keys.
  tok = bpe_tokenizer(["<s>", "</s>"], "<s> $A")
  cfg = tf.LlamaConfig(vocab_size=tok.get_vocab_size(), num_key_value_heads=2, **small,
                       attention_bias=True, mlp_bias=True, rms_norm_eps=1e-5,
                       bos_token_id=0, eos_token_id=1, tie_word_embeddings=False,
                       rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0,
                                        "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0,
                                        "original_max_position_embeddings": 32})
  model = randomise(tf.LlamaForCausalLM(cfg), 1)
  # Round to bfloat16 first so the float32 reference sees exactly the stored weights.
  model.to(torch.bfloat16).to(torch.float32)
  f = write_folder("llama", model, tok, dtype=torch.bfloat16,
                   tokenizer_config={"bos_token": "<s>", "eos_token": "</s>"})
  references(f, tf.LlamaForCausalLM)

  # Mistral (e5-mistral / SFR style): sliding window, sharded; </s> appended per the card.
  tok = bpe_tokenizer(["<s>", "</s>"], "<s> $A")
  cfg = tf.MistralConfig(vocab_size=tok.get_vocab_size(), num_key_value_heads=1, **small,
                         sliding_window=8, rope_theta=10000.0, bos_token_id=0, eos_token_id=1)
  model = randomise(tf.MistralModel(cfg), 2)
  model.to(torch.bfloat16).to(torch.float32)
  f = write_folder("mistral", model, tok, dtype=torch.bfloat16, shard="24KB",
                   tokenizer_config={"bos_token": "<s>", "eos_token": "</s>"})
  references(f, tf.MistralModel, append_eos=1)

  # Qwen2 (gte-Qwen2 style): q/k/v biases, linear rope scaling, no special tokens.
  tok = bpe_tokenizer(["<|endoftext|>"], None, qwen=True)
  cfg = tf.Qwen2Config(vocab_size=tok.get_vocab_size(), num_key_value_heads=2, **small,
                       rope_parameters={"rope_type": "linear", "factor": 2.0,
                                        "rope_theta": 1000000.0},
                       eos_token_id=0, use_sliding_window=False)
  model = randomise(tf.Qwen2Model(cfg), 3)
  model.to(torch.float16).to(torch.float32)
  f = write_folder("qwen2", model, tok, dtype=torch.float16,
                   tokenizer_config={"eos_token": "<|endoftext|>"})
  references(f, tf.Qwen2Model)

  # Qwen3 (Qwen3-Embedding style): q/k norms, head_dim != hidden / heads, EOS appended by the
  # tokenizer, sentence-transformers folder with last-token pooling and a query prompt.
  tok = bpe_tokenizer(["<|endoftext|>", "<|im_start|>"], "$A <|endoftext|>", qwen=True)
  cfg = tf.Qwen3Config(vocab_size=tok.get_vocab_size(), num_key_value_heads=2, head_dim=16,
                       **small, rope_theta=1000000.0, tie_word_embeddings=True,
                       eos_token_id=0, use_sliding_window=False)
  model = randomise(tf.Qwen3Model(cfg), 4)
  f = write_folder("qwen3", model, tok, dtype=torch.float32,
                   tokenizer_config={"eos_token": "<|endoftext|>", "padding_side": "left"})
  sentence_transformers_folder(f, pooling="last", normalize=True,
                               prompts={"query": QWEN3_PROMPT, "document": ""})
  references(f, tf.Qwen3Model, extra=[QWEN3_PROMPT + QUERY])

  # RoBERTa: positions offset by padding_idx + 1 = 2; ST folder, mean pooling, no Normalize.
  tok = roberta_tokenizer()
  cfg = tf.RobertaConfig(vocab_size=tok.get_vocab_size(), **dict(small, max_position_embeddings=130),
                         type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)
  model = randomise(tf.RobertaModel(cfg, add_pooling_layer=False), 5)
  model.to(torch.float16).to(torch.float32)
  f = write_folder("roberta", model, tok, dtype=torch.float16,
                   tokenizer_config={"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"})
  sentence_transformers_folder(f, pooling="mean", normalize=False)
  references(f, tf.RobertaModel, normalize=False, add_pooling_layer=False)

  # XLM-R: Unigram + Metaspace tokenizer, float16 weights; a plain folder (mean + normalise).
  tok = unigram_tokenizer()
  cfg = tf.XLMRobertaConfig(vocab_size=tok.get_vocab_size(),
                            **dict(small, max_position_embeddings=130), type_vocab_size=1,
                            pad_token_id=1, bos_token_id=0, eos_token_id=2)
  model = randomise(tf.XLMRobertaModel(cfg, add_pooling_layer=False), 6)
  model.to(torch.float16).to(torch.float32)
  f = write_folder("xlm-roberta", model, tok, dtype=torch.float16,
                   tokenizer_config={"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"})
  references(f, tf.XLMRobertaModel, add_pooling_layer=False)
  total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
  print(f"total {total / 1024:.0f} KiB in {OUT}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
