"""A joint text-image embedding for text-to-image GANs (after Reed et al. 2016a, DS-SJE).

``TextEncoder``: caption strings ``[B]`` -> unit-norm embeddings ``[B, embedding_dim]``, with
tokenisation inside the model (``keras.layers.TextVectorization`` over a fixed vocabulary), so
exports take ``tf.string``. Architecture: a word embedding, two width-3 1-D convolutions and a
max over the words, projected and normalised: a word-CNN, the simplest of Reed et al. 2016a's
encoders ("Learning Deep Representations of Fine-Grained Visual Descriptions"; their best was a
char-CNN-RNN, unneeded for template captions of 53 words).

``DualEncoder`` pairs it with a small image CNN and trains both with a symmetric contrastive
objective (``training.text_encoder``): the deviation from DS-SJE's hinge loss over class
prototypes is the softmax over the batch (CLIP-style) whose targets are every image of the
caption's attribute combination (its "class"), not only its own image. The GANs take the text
encoder frozen; R-precision uses both towers.

Token ids: 0 padding, 1 out-of-vocabulary, 2.. the vocabulary. ``check_captions`` refuses, in
plain TF ops (INVALID_ARGUMENT in a SavedModel), empty captions, captions with no known word and
captions longer than ``max_words`` words.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class TextEncoder(keras.Model):
    """Captions ``[B]`` (tf.string) -> L2-normalised embeddings ``[B, embedding_dim]``."""

    def __init__(self, vocabulary, max_words=24, word_dim=64, width=128, embedding_dim=128,
                 **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = [str(word) for word in vocabulary]
        self.max_words = int(max_words)
        self.word_dim, self.width, self.embedding_dim = int(word_dim), int(width), int(embedding_dim)
        self.vectorize = keras.layers.TextVectorization(
            vocabulary=self.vocabulary, ragged=True, name="vectorize")
        self.words = keras.layers.Embedding(len(self.vocabulary) + 2, self.word_dim, name="words")
        self.conv1 = keras.layers.Conv1D(self.width, 3, padding="same", activation="relu", name="conv1")
        self.conv2 = keras.layers.Conv1D(self.width, 3, padding="same", activation="relu", name="conv2")
        self.project = keras.layers.Dense(self.embedding_dim, name="project")
        self(tf.constant(["a"]))  # build

    def tokens(self, text):
        """Ragged int64 token ids ``[B, (words)]`` of each caption (no truncation)."""
        return self.vectorize(text)

    def token_ids(self, text):
        """Dense ``[B, max_words]`` token ids, zero-padded, longer captions truncated."""
        return self.tokens(text).to_tensor(default_value=0, shape=[None, self.max_words])

    def call(self, text, training=False):
        ids = self.token_ids(tf.reshape(text, [-1]))
        x = self.conv2(self.conv1(self.words(ids)))
        present = ops.cast(ids > 0, x.dtype)[..., None]
        pooled = ops.max(x * present - (1.0 - present) * 1e4, axis=1)
        pooled = ops.where(ops.sum(present, axis=1) > 0, pooled, 0.0)  # an empty caption -> 0
        return ops.normalize(self.project(pooled), axis=-1)

    def check_captions(self, text, signature="generate_from_text"):
        """``text`` once every caption has 1..max_words words, at least one known (else an
        INVALID_ARGUMENT naming the batch indices)."""
        tokens = self.tokens(text)
        lengths = tokens.row_lengths()
        known = tf.reduce_sum(tf.cast(tokens > 1, tf.int64), axis=1)
        checks = [
            tf.debugging.Assert(tf.reduce_all(lengths > 0), [
                f"{signature}: captions must not be empty; empty caption at batch index",
                tf.where(lengths == 0)[:, 0]]),
            tf.debugging.Assert(tf.reduce_all(lengths <= self.max_words), [
                f"{signature}: captions may have at most {self.max_words} words; longer caption "
                "at batch index", tf.where(lengths > self.max_words)[:, 0], "with word counts",
                tf.boolean_mask(lengths, lengths > self.max_words)]),
            tf.debugging.Assert(tf.reduce_all(tf.logical_or(known > 0, lengths == 0)), [
                f"{signature}: captions need at least one word of the model's vocabulary; no "
                "known word at batch index", tf.where(tf.logical_and(known == 0, lengths > 0))[:, 0]]),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(text)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "vocabulary": self.vocabulary,
                "max_words": self.max_words, "word_dim": self.word_dim, "width": self.width,
                "embedding_dim": self.embedding_dim}


def image_encoder(image_shape=(64, 64, 3), width=32, embedding_dim=128, name="image_encoder"):
    """Images in [-1, 1] -> L2-normalised embeddings: 4 stride-2 conv blocks, average pool, dense."""
    inputs = keras.Input(image_shape, name="images")
    x = inputs
    for index, multiple in enumerate((1, 2, 4, 4)):
        x = keras.layers.Conv2D(width * multiple, 3, strides=2, padding="same", use_bias=False,
                                name=f"conv{index + 1}")(x)
        x = keras.layers.BatchNormalization(name=f"norm{index + 1}")(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(embedding_dim, name="project")(x)
    outputs = keras.layers.UnitNormalization(name="embedding")(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="zoo")
class DualEncoder(keras.Model):
    """A text tower and an image tower in one embedding space; ``fit`` on
    ``{"images", "text", "combination"}`` batches with the class-aware contrastive loss."""

    def __init__(self, text_encoder, image_encoder, temperature=0.07, **kwargs):
        super().__init__(**kwargs)
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self.temperature = float(temperature)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="batch_accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def call(self, inputs, training=False):
        return (self.text_encoder(inputs["text"], training=training),
                self.image_encoder(inputs["images"], training=training))

    def contrastive_loss(self, text, images, combination):
        """Symmetric cross-entropy of the text-image similarity matrix over the batch, each row's
        target spread over the batch's examples of the same attribute combination."""
        logits = ops.matmul(text, ops.transpose(images)) / self.temperature
        same = ops.cast(ops.equal(combination[:, None], combination[None, :]), logits.dtype)
        targets = same / ops.sum(same, axis=1, keepdims=True)
        loss = 0.5 * (ops.mean(keras.losses.categorical_crossentropy(targets, logits, from_logits=True))
                      + ops.mean(keras.losses.categorical_crossentropy(targets, ops.transpose(logits),
                                                                       from_logits=True)))
        hits = ops.take_along_axis(same, ops.argmax(logits, axis=1)[:, None], axis=1)
        return loss, ops.mean(hits)

    def train_step(self, data):
        with tf.GradientTape() as tape:
            text, images = self(data, training=True)
            loss, accuracy = self.contrastive_loss(text, images, data["combination"])
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(accuracy)
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "temperature": self.temperature,
                "text_encoder": keras.saving.serialize_keras_object(self.text_encoder),
                "image_encoder": keras.saving.serialize_keras_object(self.image_encoder)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("text_encoder", "image_encoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
