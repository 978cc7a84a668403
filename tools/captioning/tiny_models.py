"""Tiny random-weight BLIP and BLIP-2 checkpoints, built locally for offline tests and dry-runs.

Each builder writes a directory with the same file layout as the real Hugging Face Hub repository
(``config.json``, ``model.safetensors``, ``generation_config.json``, the image processor and tokenizer
files), so that the production loading code (``XForConditionalGeneration.from_pretrained(dir)`` and
``XProcessor.from_pretrained(dir)``) runs unchanged against it. The architectures are the real ones
(BLIP: ViT + BERT-style decoder; BLIP-2: ViT + Q-Former + OPT), shrunk to a few thousand parameters,
and the tokenizers are built from a small built-in vocabulary, so nothing is downloaded.

The weights are random (seeded, so the output is deterministic); the captions are word salad, which
is all a test of the plumbing needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch

#: words of the tiny vocabularies: enough remote-sensing flavour that the dry-run captions read as words
_WORDS: tuple[str, ...] = tuple(
    """
    a an the of with and in on near next to many some two three several large small green white red
    dense sparse aerial view satellite image picture photo there is are field fields farm road roads
    river lake sea beach sand trees tree forest grass house houses building buildings roof roofs car
    cars parking lot airplane airport runway ship ships harbor boats bridge overpass intersection
    residential area tennis court baseball diamond golf course storage tanks freeway chaparral
    agricultural land mobile home park water solar panels vineyard bar bars port dock pier track
    stadium church school bare soil desert mountain snow cloud shadow square center industrial
    commercial dense medium rows crops irrigated circle pool
    """.split()
)

#: BLIP's decoder starts each caption with [DEC]; the real checkpoints add it (and [ENC]) to BERT's vocab
BLIP_BOS_TOKEN = "[DEC]"
BLIP_ENC_TOKEN = "[ENC]"

#: how much build_tiny_blip scales the decoder's random cross-attention weights (see there)
_CROSS_ATTENTION_GAIN = 8.0

#: the OPT special tokens, in OPT's order: <s>=0, <pad>=1, </s>=2, <unk>=3
_OPT_SPECIALS: tuple[str, ...] = ("<s>", "<pad>", "</s>", "<unk>")


def _unique_words() -> list[str]:
    seen: dict[str, None] = {}
    for word in _WORDS:
        seen.setdefault(word, None)
    return list(seen)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _tiny_vision_config(image_size: int, hidden_size: int, num_layers: int, num_heads: int) -> dict[str, Any]:
    """The shared tiny ViT vision config of the BLIP and BLIP-2 test models."""
    return {
        "image_size": image_size,
        "patch_size": 16,
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        # the real default (1e-10) would make every image embed alike; we want captions that differ
        "initializer_range": 0.02,
    }


def build_tiny_blip(
    out_dir: str | Path,
    *,
    image_size: int = 32,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    seed: int = 0,
) -> Path:
    """Write a tiny random BLIP captioning checkpoint (model + ``BlipProcessor``) into ``out_dir``.

    Same layout as ``Salesforce/blip-image-captioning-base``: a ``BlipForConditionalGeneration`` whose
    text config uses ``[DEC]`` as ``bos_token_id`` and ``[SEP]`` as the end of a caption, a WordPiece
    ``BertTokenizer`` with ``[DEC]`` as its bos token and ``[ENC]`` as an extra special token, and a
    ``BlipImageProcessor`` that resizes to ``image_size``. Returns ``out_dir`` as a ``Path``.
    """
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab_tokens = specials + _unique_words() + [BLIP_BOS_TOKEN, BLIP_ENC_TOKEN]
    vocab = {token: i for i, token in enumerate(vocab_tokens)}
    # vocab.txt is what the real repo ships next to tokenizer.json; write it for the same file layout
    (out / "vocab.txt").write_text("".join(f"{token}\n" for token in vocab_tokens), encoding="utf-8")
    tokenizer = BertTokenizer(
        vocab=vocab,
        do_lower_case=True,
        bos_token=BLIP_BOS_TOKEN,
        extra_special_tokens=[BLIP_ENC_TOKEN],
        model_max_length=64,
    )
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)

    config = BlipConfig(
        vision_config=_tiny_vision_config(image_size, hidden_size, num_layers, num_heads),
        text_config={
            "vocab_size": len(vocab_tokens),
            "hidden_size": hidden_size,
            "encoder_hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "max_position_embeddings": 64,
            "bos_token_id": vocab[BLIP_BOS_TOKEN],
            "eos_token_id": vocab["[SEP]"],
            "sep_token_id": vocab["[SEP]"],
            "pad_token_id": vocab["[PAD]"],
        },
        projection_dim=hidden_size,
        image_text_hidden_size=hidden_size,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: Any = BlipForConditionalGeneration(config)  # Any: reached into by attribute below
        # Random logits would sometimes end the caption at once with [SEP] or spell only special tokens
        # (dropped when decoding), leaving an empty string; a tiny model is for exercising the plumbing,
        # so keep it talking: special tokens never win, and every caption runs to max_new_tokens.
        with torch.no_grad():
            special_ids = [vocab[t] for t in specials + [BLIP_BOS_TOKEN, BLIP_ENC_TOKEN]]
            model.text_decoder.cls.predictions.bias[special_ids] = -1e4
            # At this width and init scale the cross-attention adds ~1% to the residual stream, and every
            # image gets the same caption; amplified, the captions depend on the pixels, as they should.
            for layer in model.text_decoder.bert.encoder.layer:
                layer.crossattention.self.value.weight.mul_(_CROSS_ATTENTION_GAIN)
                layer.crossattention.output.dense.weight.mul_(_CROSS_ATTENTION_GAIN)
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _train_byte_level_bpe(vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a byte-level BPE (GPT-2 / OPT style) on the tiny word list; return its vocab and merges."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    # The alphabet is only the bytes the word list uses (not all 256), so every token decodes to
    # readable ASCII; a random model emitting a lone UTF-8 continuation byte would print U+FFFD.
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(_OPT_SPECIALS), show_progress=False
    )
    words = _unique_words()
    corpus = [" ".join(words[i : i + 8]) for i in range(0, len(words), 4)] + [f" {w}" for w in words]
    bpe.train_from_iterator(corpus, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    pairs = [m.split(" ", 1) if isinstance(m, str) else m for m in state["merges"]]
    return {str(k): int(v) for k, v in state["vocab"].items()}, [(str(a), str(b)) for a, b in pairs]


def build_tiny_blip2(
    out_dir: str | Path,
    *,
    image_size: int = 32,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    num_query_tokens: int = 4,
    bpe_vocab_size: int = 400,
    seed: int = 0,
) -> Path:
    """Write a tiny random BLIP-2 (OPT) checkpoint (model + ``Blip2Processor``) into ``out_dir``.

    Same layout as ``Salesforce/blip2-opt-2.7b``: a ``Blip2ForConditionalGeneration`` with a ViT, a
    Q-Former with ``num_query_tokens`` queries and an OPT decoder; a byte-level BPE ``GPT2Tokenizer``
    with OPT's special tokens (``</s>`` as bos and eos, prepended to every text) plus the ``<image>``
    token that ``Blip2Processor`` adds, whose id is the config's ``image_token_index``; and a
    ``BlipImageProcessor`` that resizes to ``image_size``. Returns ``out_dir`` as a ``Path``.
    """
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
        GPT2Tokenizer,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    vocab, merges = _train_byte_level_bpe(bpe_vocab_size)
    tokenizer = GPT2Tokenizer(
        vocab=vocab,
        merges=cast(Any, merges),  # annotated list[str], but tokenizers' BPE wants (left, right) pairs
        bos_token="</s>",
        eos_token="</s>",
        unk_token="</s>",
        pad_token="<pad>",
        add_bos_token=True,
        model_max_length=64,
    )
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size})
    # the processor adds the <image> token to the tokenizer, as the real checkpoint's tokenizer has it
    processor = Blip2Processor(
        image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=num_query_tokens
    )
    tokenizer = processor.tokenizer
    image_token_id = tokenizer.convert_tokens_to_ids(processor.image_token.content)

    config = Blip2Config(
        vision_config=_tiny_vision_config(image_size, hidden_size, num_layers, num_heads),
        qformer_config={
            "vocab_size": 32,
            "hidden_size": hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "intermediate_size": 2 * hidden_size,
            "max_position_embeddings": 64,
            "encoder_hidden_size": hidden_size,
            "cross_attention_frequency": 1,
        },
        text_config={
            "model_type": "opt",
            # the real OPT vocab is padded to a multiple of 8 too (50272 for 50266 tokens)
            "vocab_size": _round_up(len(tokenizer), 8),
            "hidden_size": hidden_size,
            "word_embed_proj_dim": hidden_size,
            "ffn_dim": 2 * hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "max_position_embeddings": 64,
            "bos_token_id": tokenizer.convert_tokens_to_ids("</s>"),
            "eos_token_id": tokenizer.convert_tokens_to_ids("</s>"),
            "pad_token_id": tokenizer.convert_tokens_to_ids("<pad>"),
        },
        num_query_tokens=num_query_tokens,
        image_token_index=image_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: Any = Blip2ForConditionalGeneration(config)
        # OPT ties its output layer to the input embeddings and has no output bias, so a zero embedding
        # row gives a logit of exactly 0, which the maximum over a few hundred random logits always beats:
        # the special tokens (</s> included) and the padding rows past the tokenizer's end are never
        # generated, and every caption runs to max_new_tokens with readable tokens (see build_tiny_blip).
        with torch.no_grad():
            embeddings = model.get_input_embeddings().weight
            special_ids = [tokenizer.convert_tokens_to_ids(t) for t in (*_OPT_SPECIALS, "<image>")]
            embeddings[special_ids] = 0.0
            embeddings[len(tokenizer) :] = 0.0
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
