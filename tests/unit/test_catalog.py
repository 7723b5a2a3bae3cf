"""herald.rendering.catalog: the kinds, their categories and templates, example data and malformed folders."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from herald.models import CHANNELS
from herald.rendering.catalog import Catalog, CatalogError, load_catalog

# DESIGN.md, "Words": kind -> category.
CATEGORIES = {
    "overdue_notice": "collection",
    "repayment_due": "collection",
    "installment_due": "agreement",
    "agreement_confirmed": "agreement",
    "early_warning": "agreement",
}


def _kind(root: Path, name: str, toml: str, *templates: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "kind.toml").write_text(toml, "utf-8")
    for template in templates:
        (folder / template).write_text("x", "utf-8")
    return folder


def test_the_five_kinds_have_the_designed_categories(catalog: Catalog) -> None:
    assert {name: catalog.kinds[name].category for name in CATEGORIES} == CATEGORIES


@pytest.mark.parametrize("kind", sorted(CATEGORIES))
def test_each_kind_has_every_channel_in_chinese_and_english(catalog: Catalog, kind: str) -> None:
    spec = catalog.get(kind)

    for channel in CHANNELS:
        assert {"zh-CN", "en"} <= spec.locales[channel], channel
    assert {"zh-CN", "en"} <= spec.html_locales
    assert spec.default_expiry > timedelta(0)
    assert spec.description


def test_unknown_kind_names_the_known_ones(catalog: Catalog) -> None:
    with pytest.raises(KeyError, match=r"unknown kind 'nope'.*overdue_notice"):
        catalog.get("nope")


@pytest.mark.parametrize("kind", sorted(CATEGORIES))
def test_example_data_sets_dates_relative_to_today(catalog: Catalog, kind: str) -> None:
    spec = catalog.get(kind)
    today = datetime.now(UTC).date()
    raw = json.loads((spec.path / "example.json").read_text("utf-8"))

    data = spec.example_data(today)

    assert spec.example_dates
    for name, days in spec.example_dates.items():
        assert data[name] == (today + timedelta(days=days)).isoformat()
    assert {k: v for k, v in data.items() if k not in spec.example_dates} == {
        k: v for k, v in raw.items() if k not in spec.example_dates
    }


def test_example_dates_overlay_example_json(tmp_path: Path) -> None:
    folder = _kind(tmp_path, "custom", 'category = "transactional"\n[example.dates]\ndue = 5\nmissed = -2\n')
    (folder / "example.json").write_text('{"due": "placeholder", "amount": "1.00"}', "utf-8")
    spec = load_catalog(tmp_path).get("custom")
    today = datetime.now(UTC).date()

    assert spec.example_data(today) == {
        "due": (today + timedelta(days=5)).isoformat(),
        "missed": (today - timedelta(days=2)).isoformat(),
        "amount": "1.00",
    }
    tomorrow = today + timedelta(days=1)
    assert spec.example_data(tomorrow)["due"] == (tomorrow + timedelta(days=5)).isoformat()


def test_template_names_are_sorted_into_channels_and_locales(tmp_path: Path) -> None:
    _kind(
        tmp_path,
        "custom",
        'category = "agreement"\ndefault_expiry_hours = 6\n',
        "sms.zh.j2",
        "sms.en.j2",
        "push.pt-BR.j2",
        "email.en.j2",
        "email.en.html.j2",
        "README.md",
        "sms.j2",
    )

    spec = load_catalog(tmp_path).get("custom")

    assert spec.locales == {"sms": {"zh", "en"}, "email": {"en"}, "push": {"pt-BR"}}
    assert spec.html_locales == {"en"}
    assert spec.default_expiry == timedelta(hours=6)


def test_folders_without_kind_toml_are_not_kinds(tmp_path: Path) -> None:
    _kind(tmp_path, "real", 'category = "collection"\n')
    (tmp_path / "partials").mkdir()

    assert set(load_catalog(tmp_path).kinds) == {"real"}


@pytest.mark.parametrize(
    "toml",
    [
        pytest.param('category = "marketing"\n', id="unknown-category"),
        pytest.param("description = 'no category'\n", id="missing-category"),
        pytest.param('category = "collection\n', id="not-toml"),
        pytest.param('category = "collection"\ndefault_expiry_hours = 0\n', id="zero-expiry"),
        pytest.param('category = "collection"\n[example.dates]\ndue = "soon"\n', id="date-not-days"),
    ],
)
def test_malformed_kind_toml_names_the_file(tmp_path: Path, toml: str) -> None:
    folder = _kind(tmp_path, "broken", toml)

    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path)

    assert str(folder / "kind.toml") in str(info.value)


def test_bad_category_lists_the_allowed_ones(tmp_path: Path) -> None:
    _kind(tmp_path, "broken", 'category = "marketing"\n')

    with pytest.raises(CatalogError, match=r"collection.*agreement.*transactional"):
        load_catalog(tmp_path)


def test_missing_templates_dir_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="HERALD_TEMPLATES_DIR"):
        load_catalog(tmp_path / "nowhere")
