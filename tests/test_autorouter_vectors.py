"""Static word-vector features (issue 17, item 2): a prompt whose words no training prompt
shared is still placed by what its words mean; the table travels in the artifact, and
training with it stays deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from polyroute.autorouter.artifact import RouterArtifact
from polyroute.autorouter.distill import load_table, save_table, whole_words
from polyroute.autorouter.features import WordVectors, build_featurizer
from polyroute.autorouter.predictor import QualityPredictor
from polyroute.autorouter.readers import load_routing_data
from polyroute.autorouter.training import TrainingConfig, train_router
from tests.test_autorouter import write_routerbench

# Two meanings: science words along one axis, everyday words along another.
SCIENCE = ("physics", "chemistry", "astronomy", "quantum", "galaxy", "molecule")
EVERYDAY = ("hello", "friend", "coffee", "weather", "garden", "breakfast")


def table(path: Path) -> Path:
    words = [*SCIENCE, *EVERYDAY]
    vectors = np.array([[1.0, 0.0, 0.0]] * len(SCIENCE) + [[0.0, 1.0, 0.0]] * len(EVERYDAY),
                       dtype=np.float32)
    save_table(path, words, vectors)
    return path


def rows() -> list[tuple[str, str, list[float | str], list[float]]]:
    """The weak model fails science questions and handles small talk; the training prompts
    use only the first half of each word list."""
    out: list[tuple[str, str, list[float | str], list[float]]] = []
    for i in range(60):
        if i % 2:
            word = SCIENCE[i % 3]
            out.append((f"explain {word} case {i}", "science", [1.0, 0.0], [0.01, 0.001]))
        else:
            word = EVERYDAY[i % 3]
            out.append((f"talk about {word} case {i}", "chat", [1.0, 1.0], [0.01, 0.001]))
    return out


def test_unshared_words_are_placed_by_meaning(tmp_path: Path) -> None:
    write_routerbench(tmp_path / "train.csv", rows())
    tables = load_routing_data(tmp_path / "train.csv")
    vectors = str(table(tmp_path / "vectors.npz"))
    config = TrainingConfig(max_iterations=80, min_prompts_per_term=2, word_vectors=vectors)
    artifact = train_router(tables, config)
    artifact.save(tmp_path / "a.npz")
    train_router(tables, config).save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = RouterArtifact.load(tmp_path / "a.npz")
    assert loaded.word_vectors is not None and loaded.word_vectors.words[:2] == SCIENCE[:2]
    predictor = QualityPredictor(loaded)
    weak = predictor.heads.index("weak")
    unseen = predictor.probability_matrix(["explain galaxy case 7", "explain garden case 7"])
    assert unseen[0, weak] < unseen[1, weak] - 0.1  # neither word was in any training prompt
    lexical = QualityPredictor(train_router(
        tables, TrainingConfig(max_iterations=80, min_prompts_per_term=2)))
    blind = lexical.probability_matrix(["explain galaxy case 7", "explain garden case 7"])
    assert abs(blind[0, weak] - blind[1, weak]) < 1e-9  # words alone cannot tell them apart


def test_a_prompt_vector_is_the_mean_of_its_known_words(tmp_path: Path) -> None:
    words, vectors = load_table(table(tmp_path / "v.npz"))
    featurizer = build_featurizer(["physics hello", "coffee"],
                                  word_vectors=WordVectors(tuple(words), vectors))
    raw = featurizer.dense_raw("physics physics hello zebra", "physics physics hello zebra",
                               ["physics", "physics", "hello", "zebra"])
    assert np.allclose(raw[-3:], [0.5, 0.5, 0.0])  # distinct known words; 'zebra' adds nothing
    assert featurizer.dense_size == 12 + 3


def test_the_table_takes_whole_words_only() -> None:
    assert whole_words({"physics": 1, "##ics": 2, "[UNK]": 3, "42": 4, "naïve": 5}) == [
        "42", "physics"]
