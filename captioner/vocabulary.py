"""The offline WordPiece vocabulary and tokenizer of the randomly initialised
BLIPs: the tiny test model (make_tiny.py) and export.py --random. No hub is
needed: the words are listed here.
"""

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
WORDS = """a an the of with and in on at to from by for two three four six one
cad model part block plate box cube cylinder sphere cone torus ring washer
flange bracket shaft gear nut bolt screw pipe tube cup knob spring frame
hole holes slot step steps fillet fillets chamfer edge edges face faces corner
round square rectangular circular flat thin thick small large long short tall
top bottom side front back left right middle center view image picture
white gray grey blue black metal object shape solid drawing render 3d
that has is are it its""".split()
LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def vocabulary():
    # "a" is both a word and a letter: the dict keeps the letter's id, so the
    # ids run to len(tokens) - 1 with one unused; the model's vocabulary
    # covers them all (vocab_size is the largest id + 1).
    tokens = SPECIAL + sorted(set(WORDS)) + list(LETTERS) + ["##" + c for c in LETTERS] + list(".,-")
    return {token: i for i, token in enumerate(tokens)}


def build_tokenizer(vocab):
    """BERT's WordPiece tokenizer (lower case, [CLS] … [SEP]) over `vocab`."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, clean_text=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.add_special_tokens(SPECIAL)
    return tokenizer
