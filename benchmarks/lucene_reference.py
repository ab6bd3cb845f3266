"""Real Lucene answers for the WebShop search comparison (Python 3.10, run by scripts/lucene_reference.sh).

This program runs outside prism-agents' environment, in a venv holding only
pyserini 0.17.0 (for its Anserini 0.14.3 jar, Lucene 8) and pyjnius. Of pyserini's
Python side it imports only the package itself (an empty ``__init__``) to find the jar,
none of the modules that need torch or faiss: it puts the jar on the class path and
calls Anserini's classes directly.

Input (JSON file given as the only argument)::

    {"documents": "documents.jsonl",  # {"id", "contents"} per line, as WebShop's
                                      # convert_product_file_format.py writes them
                                      # (its stored "product" copy is not indexed)
     "workdir": "...",                # the index is built here
     "queries": ["..."], "k": 50,     # searched with SimpleSearcher.search(q, k)
     "texts": ["..."],                # analysed with Anserini's default English analyzer
     "out": "answers.json"}

Output: ``{"hits": [[[docid, score], ...] per query], "tokens": [[[term, start, end], ...] per text]}``
(offsets in UTF-16 code units).
The index is built as WebShop's search_engine/run_indexing.sh builds it
(JsonCollection, DefaultLuceneDocumentGenerator, one thread, positions, document
vectors and raw documents stored).
"""

import json
import os
import shutil
import sys
from pathlib import Path


def _start_jvm() -> None:
    import jnius_config

    import pyserini  # only to find the package folder: its __init__ imports nothing heavy

    jars = sorted((Path(pyserini.__file__).parent / "resources" / "jars").glob("anserini-*-fatjar.jar"))
    if not jars:
        raise SystemExit("no Anserini jar under pyserini/resources/jars: reinstall pyserini==0.17.0")
    jnius_config.add_options("-Xmx2g")
    jnius_config.set_classpath(str(jars[-1]))


def _build_index(documents: Path, workdir: Path) -> Path:
    """Index ``documents`` under ``workdir/index`` (rebuilt every run: the documents may have changed)."""
    from jnius import autoclass

    collection = workdir / "collection"
    index = workdir / "index"
    for folder in (collection, index):
        shutil.rmtree(folder, ignore_errors=True)
    collection.mkdir(parents=True)
    shutil.copy(documents, collection / "documents.jsonl")
    args = [
        "-collection", "JsonCollection", "-input", str(collection), "-index", str(index),
        "-generator", "DefaultLuceneDocumentGenerator", "-threads", "1",
        "-storePositions", "-storeDocvectors", "-storeRaw",
    ]
    autoclass("io.anserini.index.IndexCollection").main(args)
    return index


def _analyze(analyzer, text: str) -> list:
    """``[term, start, end]`` of each token (offsets in UTF-16 code units, as Java counts them)."""
    from jnius import autoclass, cast

    loader = autoclass("java.lang.ClassLoader").getSystemClassLoader()
    term_name = "org.apache.lucene.analysis.tokenattributes.CharTermAttribute"
    offset_name = "org.apache.lucene.analysis.tokenattributes.OffsetAttribute"
    stream = analyzer.tokenStream("contents", text)
    term = cast(term_name, stream.addAttribute(loader.loadClass(term_name)))
    offset = cast(offset_name, stream.addAttribute(loader.loadClass(offset_name)))
    tokens = []
    stream.reset()
    while stream.incrementToken():
        tokens.append([term.toString(), offset.startOffset(), offset.endOffset()])
    stream.end()
    stream.close()
    return tokens


def main() -> None:
    request = json.loads(Path(sys.argv[1]).read_text())
    _start_jvm()
    from jnius import autoclass

    answers = {"hits": [], "tokens": []}
    if request.get("queries"):
        index = _build_index(Path(request["documents"]), Path(request["workdir"]))
        searcher = autoclass("io.anserini.search.SimpleSearcher")(str(index))
        for query in request["queries"]:
            answers["hits"].append([[hit.docid, hit.score] for hit in searcher.search(query, request["k"])])
        searcher.close()
    if request.get("texts"):
        analyzer = autoclass("io.anserini.analysis.DefaultEnglishAnalyzer").newDefaultInstance()
        answers["tokens"] = [_analyze(analyzer, text) for text in request["texts"]]
    Path(request["out"]).write_text(json.dumps(answers, ensure_ascii=False))
    os._exit(0)  # the JVM's threads would otherwise keep the process alive


if __name__ == "__main__":
    main()
