"""A deterministic corpus of Chinese financial-news feeds for the benchmark.

``N`` sources × ``M`` entries; even sources are RSS 2.0, odd ones Atom 1.0.
Each entry has a ~20-character title, 5–8 ``<p>`` paragraphs totalling
1,500–3,000 characters, a ``+0800`` date, a guid/id, an author and a category.

Layout under ``root``::

    www/base/feeds/sNNNNN.xml     the corpus
    www/changed/feeds/sNNNNN.xml  10 % of the sources gained new entries; the
                                  other files are hard links to base/ (same
                                  mtime and size, so the same ETag)
    www/current -> base           what nginx serves (switched by the benchmark)

The same (source, entry) pair always gives the same bytes, in any variant.

    python bench/corpus.py DIR [--sources 500] [--entries 50]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from xml.sax.saxutils import escape

VERSION = 1
CATEGORIES = 10
#: New entries gained by each changed source (the oldest as many drop off).
NEW_ENTRIES = 5
CST = timezone(timedelta(hours=8))
T0 = datetime(2024, 5, 6, 9, 30, tzinfo=CST)

_SUBJECTS = (
    "央行", "证监会", "沪深两市", "北向资金", "创业板指", "上证指数", "深证成指", "科创板", "券商板块",
    "银行股", "新能源汽车", "光伏产业链", "半导体板块", "人民币汇率", "国债收益率", "公募基金",
    "保险资金", "房地产企业", "地方政府专项债", "上市公司", "大湾区", "前海管理局", "深交所", "上交所",
    "外资机构", "私募基金", "消费电子", "医药生物", "白酒板块", "有色金属")
_VERBS = (
    "宣布", "表示", "发布", "推动", "加快", "持续", "稳步", "明显", "大幅", "小幅", "进一步", "全面",
    "积极", "有序", "重点", "深入")
_OBJECTS = (
    "降准政策", "资本市场改革", "注册制落地", "融资融券余额", "成交金额", "主力资金净流入",
    "业绩预告", "一季度财报", "分红方案", "回购计划", "产业基金", "科技创新", "高质量发展",
    "风险防控", "流动性管理", "信贷投放", "跨境投融资", "数字人民币试点", "绿色金融", "普惠金融",
    "市场预期", "估值修复", "行业景气度", "产能扩张", "供应链安全")
_TAILS = (
    "市场人士认为", "分析人士指出", "业内专家表示", "据记者了解", "数据显示", "截至收盘",
    "值得注意的是", "与此同时", "从长期来看", "短期内", "总体而言", "据悉")
_TAGS = ("股票", "基金", "债券", "宏观", "公司", "银行", "保险", "期货", "外汇", "科创")
_AUTHORS = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴昊")


def _sentence(rng: random.Random) -> str:
    parts = [rng.choice(_TAILS) + "，"] if rng.random() < 0.4 else []
    for _ in range(rng.randint(2, 4)):
        parts.append(rng.choice(_SUBJECTS) + rng.choice(_VERBS) + rng.choice(_OBJECTS))
        if rng.random() < 0.3:
            parts.append(f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}亿元")
        parts.append("，")
    parts[-1] = "。"
    return "".join(parts)


def _entry_text(source: int, n: int) -> tuple[str, str, str, str]:
    """Title, HTML body, author and tag of entry ``n`` of ``source`` (deterministic)."""
    rng = random.Random(f"feedhub-bench {source} {n}")
    title = ""
    while len(title) < 18:
        title += rng.choice(_SUBJECTS) + rng.choice(_VERBS) + rng.choice(_OBJECTS)
    title = title[:22]
    total = rng.randint(1500, 3000)
    paragraphs = rng.randint(5, 8)
    html = []
    for p in range(paragraphs):
        want = total // paragraphs
        text = ""
        while len(text) < want:
            text += _sentence(rng)
        cls = ' class="em_media"' if p == 0 else ""
        html.append(f"<p{cls}>{text[:want]}</p>")
    return title, "\n".join(html), rng.choice(_AUTHORS), rng.choice(_TAGS)


def _published(source: int, n: int) -> datetime:
    return T0 + timedelta(minutes=17 * n, seconds=7 * source)


def _rss(source: int, numbers: range) -> str:
    items = []
    for n in reversed(numbers):
        title, html, author, tag = _entry_text(source, n)
        when = _published(source, n).strftime("%a, %d %b %Y %H:%M:%S +0800")
        items.append(
            f"<item><title>{escape(title)}</title>"
            f"<link>https://www.example.com/s{source:05d}/{n:06d}.html</link>"
            f'<guid isPermaLink="false">NW2024{source:05d}{n:06d}</guid>'
            f"<dc:creator>{author}</dc:creator><category>{tag}</category>"
            f"<pubDate>{when}</pubDate>"
            f"<description><![CDATA[{html}]]></description></item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>证券时报网 要闻 {source}</title><link>https://www.example.com/s{source:05d}/</link>"
        f"<description>证券时报网要闻与快讯 {source}</description><language>zh-cn</language>"
        + "\n".join(items) + "</channel></rss>\n")


def _atom(source: int, numbers: range) -> str:
    entries = []
    for n in reversed(numbers):
        title, html, author, tag = _entry_text(source, n)
        when = _published(source, n).isoformat()
        entries.append(
            f"<entry><title>{escape(title)}</title>"
            f'<link rel="alternate" href="https://www.example.com/s{source:05d}/{n:06d}.html"/>'
            f"<id>tag:example.com,2024:s{source:05d}-{n:06d}</id>"
            f"<author><name>{author}</name></author><category term=\"{tag}\"/>"
            f"<published>{when}</published><updated>{when}</updated>"
            f'<content type="html">{escape(html)}</content></entry>')
    updated = _published(source, numbers[-1]).isoformat()
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>财经快讯 {source}</title><id>tag:example.com,2024:s{source:05d}</id>"
        f'<link rel="alternate" href="https://www.example.com/s{source:05d}/"/>'
        f"<updated>{updated}</updated>"
        + "\n".join(entries) + "</feed>\n")


def feed_bytes(source: int, entries: int, changed: bool = False) -> bytes:
    """One source's document, in the base or the changed variant."""
    start = NEW_ENTRIES if changed and is_changed(source) else 0
    numbers = range(start, start + entries)
    text = _rss(source, numbers) if source % 2 == 0 else _atom(source, numbers)
    return text.encode("utf-8")


def is_changed(source: int) -> bool:
    """Whether ``source`` gains entries in the changed variant (10 % of them)."""
    return source % 10 == 3


def category(source: int) -> str:
    return f"cat{source % CATEGORIES:02d}"


def feeds_yaml(folder: Path, port: int, sources: int, entries: int, *, interval: str = "15m",
               extra: str = "") -> Path:
    """A feeds.yaml in ``folder`` following the generated corpus served on ``port``.

    ``extra`` is appended as is (a ``storage:`` section, say).
    """
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["site:", "  title: 财经新闻聚合", "  base_url: http://127.0.0.1:8080/",
             "  timezone: Asia/Shanghai", "  data_dir: data", "defaults:", f"  interval: {interval}",
             f"  max_entries: {min(entries, 50)}", "categories:"]
    for c in range(CATEGORIES):
        lines += [f"  cat{c:02d}:", f"    title: 财经分类{c:02d}新闻", f"    description: 第{c}类要闻与快讯"]
    lines.append("sources:")
    for i in range(sources):
        lines += [f"  - url: http://127.0.0.1:{port}/{feed_name(i)}", f"    category: {category(i)}"]
    path = folder / "feeds.yaml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def feed_name(source: int) -> str:
    return f"feeds/s{source:05d}.xml"


def ensure(root: Path, sources: int, entries: int) -> Path:
    """Generate the corpus under ``root`` unless a complete one is already there."""
    stamp = root / "corpus.json"
    want = {"version": VERSION, "sources": sources, "entries": entries}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return root
    if root.exists():
        shutil.rmtree(root)
    base, changed = root / "www/base/feeds", root / "www/changed/feeds"
    base.mkdir(parents=True)
    changed.mkdir(parents=True)
    for i in range(sources):
        path = base / f"s{i:05d}.xml"
        path.write_bytes(feed_bytes(i, entries))
        mtime = (T0 + timedelta(days=1)).astimezone(UTC).timestamp()
        os.utime(path, (mtime, mtime))
        if is_changed(i):
            other = changed / path.name
            other.write_bytes(feed_bytes(i, entries, changed=True))
            os.utime(other, (mtime + 3600, mtime + 3600))
        else:
            os.link(path, changed / path.name)
    (root / "www/current").symlink_to("base")
    stamp.write_text(json.dumps(want))
    return root


def switch(root: Path, variant: str) -> None:
    """Point ``www/current`` at ``base`` or ``changed`` (atomically)."""
    tmp = root / "www/current.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(variant)
    tmp.replace(root / "www/current")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--entries", type=int, default=50)
    args = parser.parse_args()
    ensure(args.root, args.sources, args.entries)
    size = sum(p.stat().st_size for p in (args.root / "www/base/feeds").iterdir())
    print(f"{args.root}: {args.sources} sources × {args.entries} entries, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
