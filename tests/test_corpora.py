"""Corpus adapters: name tables, scans over tiny placeholder trees, auto-detection, CSV manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from emotion_refinery.data.corpora import (
    CORPORA,
    CORPUS_NAMES,
    Corpus,
    Skipped,
    Utterance,
    detect,
    get_corpus,
    scan_corpus,
)
from emotion_refinery.data.corpora.csv_manifest import parse_votes
from emotion_refinery.errors import CorpusError, EmorefineError


def touch(root: Path, *relpaths: str) -> None:
    """Create placeholder files (adapters only read names)."""
    for rel in relpaths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF")


def check(corpus: str, relpath: str, expected) -> None:
    got = CORPORA[corpus].parse(relpath)
    if isinstance(expected, tuple):
        assert got == expected
    else:
        assert isinstance(got, str) and expected in got


# --- registry ------------------------------------------------------------------------------------

def test_registry_names_and_classes():
    assert CORPUS_NAMES == ("auto", "casia", "cremad", "csv", "emodb", "iemocap", "iemocap-impro", "iemocap-no-excited",
                            "ravdess", "savee", "tess", "urdu")
    for name, corpus in CORPORA.items():
        assert isinstance(corpus, Corpus) and corpus.name == name and corpus.description
        assert get_corpus(name) is corpus
    assert CORPORA["emodb"].classes == ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")
    assert CORPORA["ravdess"].classes[:3] == ("neutral", "calm", "happy")


def test_get_corpus_unknown_name():
    with pytest.raises(CorpusError, match=r"Received: corpus='xyz'; expected one of auto, casia, cremad, csv, emodb, "
                                          r"iemocap, iemocap-impro, iemocap-no-excited, ravdess, savee, tess, urdu"):
        get_corpus("xyz")
    assert issubclass(CorpusError, EmorefineError)


# --- name tables -----------------------------------------------------------------------------------

@pytest.mark.parametrize("relpath, expected", [
    ("03a01Fa.wav", ("03a01Fa", "happiness", "03", "a01")),
    ("wav/16b10Wb.wav", ("16b10Wb", "anger", "16", "b10")),
    ("08a02Lc.flac", ("08a02Lc", "boredom", "08", "a02")),
    ("11b03Ea.wav", ("11b03Ea", "disgust", "11", "b03")),
    ("09a05Aa.wav", ("09a05Aa", "fear", "09", "a05")),
    ("10a07Td.wav", ("10a07Td", "sadness", "10", "a07")),
    ("15b09Nc.wav", ("15b09Nc", "neutral", "15", "b09")),
    ("03a01Xa.wav", "unknown emodb emotion letter 'X'"),
    ("03a01Xa.wav", "W, L, E, A, F, T, N"),
    ("x.wav", "file name 'x.wav' does not match the emodb pattern SSTTTEV (e.g. 03a01Fa.wav)"),
    ("03c01Fa.wav", "does not match the emodb pattern"),
    ("3a01Fa.wav", "does not match the emodb pattern"),
    ("03a01FaX.wav", "does not match the emodb pattern"),
])
def test_emodb_names(relpath, expected):
    check("emodb", relpath, expected)


@pytest.mark.parametrize("relpath, expected", [
    ("liuchang/angry/201.wav", ("liuchang_angry_201", "angry", "liuchang", "201")),
    ("wangzhe/fear/215.wav", ("wangzhe_fear_215", "fear", "wangzhe", "215")),
    ("zhaoquanyin/happy/250.wav", ("zhaoquanyin_happy_250", "happy", "zhaoquanyin", "250")),
    ("ZhaoZuoxiang/Surprise/203.wav", ("ZhaoZuoxiang_surprise_203", "surprise", "ZhaoZuoxiang", "203")),
    ("CASIA/6/liuchang/SAD/240.wav", ("liuchang_sad_240", "sad", "liuchang", "240")),
    ("liuchang/bored/201.wav", "unknown casia emotion folder 'bored'"),
    ("angry/201.wav", "does not match the casia layout speaker/emotion/ID.wav"),
    ("liuchang/angry/take1.wav", "not a numeric casia sentence id"),
])
def test_casia_names(relpath, expected):
    check("casia", relpath, expected)


@pytest.mark.parametrize("relpath, expected", [
    ("DC_a01.wav", ("DC_a01", "anger", "DC", "a01")),
    ("ALL/JE_sa15.wav", ("JE_sa15", "sadness", "JE", "sa15")),
    ("JK_su03.wav", ("JK_su03", "surprise", "JK", "su03")),
    ("KL_n30.wav", ("KL_n30", "neutral", "KL", "n30")),
    ("DC/a01.wav", ("DC_a01", "anger", "DC", "a01")),
    ("AudioData/JE/d07.wav", ("JE_d07", "disgust", "JE", "d07")),
    ("KL/f12.wav", ("KL_f12", "fear", "KL", "f12")),
    ("JK/h02.wav", ("JK_h02", "happiness", "JK", "h02")),
    ("KL/sa01.wav", ("KL_sa01", "sadness", "KL", "sa01")),
    ("DC_x01.wav", "unknown savee emotion prefix 'x'"),
    ("AB_a01.wav", "unknown savee speaker 'AB'"),
    ("misc/a01.wav", "unknown savee speaker 'MISC'"),
    ("DC_a1.wav", "does not match the savee pattern"),
])
def test_savee_names(relpath, expected):
    check("savee", relpath, expected)


@pytest.mark.parametrize("relpath, expected", [
    ("Actor_01/03-01-05-01-02-01-01.wav", ("03-01-05-01-02-01-01", "angry", "Actor_01", "02")),
    ("03-01-01-01-01-01-24.wav", ("03-01-01-01-01-01-24", "neutral", "Actor_24", "01")),
    ("Actor_12/03-01-02-02-01-02-12.wav", ("03-01-02-02-01-02-12", "calm", "Actor_12", "01")),
    ("Actor_07/03-01-08-02-02-02-07.wav", ("03-01-08-02-02-02-07", "surprised", "Actor_07", "02")),
    ("Actor_07/03-01-06-01-01-01-07.wav", ("03-01-06-01-01-01-07", "fearful", "Actor_07", "01")),
    ("Actor_01/03-02-05-01-02-01-01.wav", "only audio-only (03) speech (01) files are used"),
    ("Actor_01/03-02-05-01-02-01-01.wav", "vocal channel 02"),
    ("01-01-05-01-02-01-01.wav", "modality 01"),
    ("03-01-09-01-01-01-01.wav", "unknown ravdess emotion code '09'"),
    ("03-01-05-01-02-01.wav", "does not match the ravdess pattern"),
])
def test_ravdess_names(relpath, expected):
    check("ravdess", relpath, expected)


@pytest.mark.parametrize("relpath, expected", [
    ("OAF_angry/OAF_back_angry.wav", ("OAF_back_angry", "angry", "OAF", "back")),
    ("YAF_disgust/YAF_bar_disgust.wav", ("YAF_bar_disgust", "disgust", "YAF", "bar")),
    ("OAF_Fear/OAF_base_fear.wav", ("OAF_base_fear", "fear", "OAF", "base")),
    ("yaf_Happy_bath_happy.wav", "unknown tess emotion 'bath_happy'"),
    ("YAF_happy/yaf_Bath_Happy.wav", ("YAF_bath_happy", "happy", "YAF", "bath")),
    ("OAF_neutral/OAF_bean_neutral.wav", ("OAF_bean_neutral", "neutral", "OAF", "bean")),
    ("OAF_Pleasant_surprise/OAF_bite_ps.wav", ("OAF_bite_pleasant_surprise", "pleasant_surprise", "OAF", "bite")),
    ("YAF_bite_pleasant_surprised.wav", ("YAF_bite_pleasant_surprise", "pleasant_surprise", "YAF", "bite")),
    ("YAF_bite_pleasant_surprise.wav", ("YAF_bite_pleasant_surprise", "pleasant_surprise", "YAF", "bite")),
    ("YAF_sad/YAF_boat_sad.wav", ("YAF_boat_sad", "sad", "YAF", "boat")),
    ("OAF_back_bored.wav", "unknown tess emotion 'bored'"),
    ("MAF_back_angry.wav", "does not match the tess pattern"),
    ("OAF_angry.wav", "does not match the tess pattern"),
])
def test_tess_names(relpath, expected):
    check("tess", relpath, expected)


@pytest.mark.parametrize("relpath, expected", [
    ("AudioWAV/1001_DFA_ANG_XX.wav", ("1001_DFA_ANG_XX", "anger", "1001", "DFA")),
    ("1076_MTI_SAD_XX.wav", ("1076_MTI_SAD_XX", "sad", "1076", "MTI")),
    ("1001_IEO_NEU_LO.wav", ("1001_IEO_NEU_LO", "neutral", "1001", "IEO")),
    ("1001_DFA_CAL_XX.wav", "unknown cremad emotion code 'CAL'"),
    ("1001_XYZ_ANG_XX.wav", "unknown cremad sentence code 'XYZ'"),
    ("101_DFA_ANG_XX.wav", "does not match the cremad pattern"),
])
def test_cremad_names(relpath, expected):
    check("cremad", relpath, expected)


def test_emodb_votes_derived_from_the_perception_test(tmp_path):
    touch(tmp_path, "wav/03a01Fa.wav", "wav/03a01Wa.wav", "wav/16b10Tb.wav")
    nbsp = "\xa0"
    rows = [("03a01Fa.wav", "90,00"), ("03a01Wa.wav", "100,00"), ("99x99Xx.wav", "50,00")]
    (tmp_path / "erkennung.txt").write_bytes(("Nr.\tSatz\terkannt\tnatuerlich\n" + "".join(
        f"{i}{nbsp * 2}\t{name}\t{rate}{nbsp * 5}\t35,00{nbsp * 5}\n" for i, (name, rate) in enumerate(rows))
    ).encode("latin-1"))
    votes = {u.id: u.votes for u in CORPORA["emodb"].scan(tmp_path / "wav").utterances}
    assert votes["03a01Wa"] == {"anger": 20.0}  # recognised by all 20 listeners
    assert votes["03a01Fa"]["happiness"] == pytest.approx(18.0)
    assert sum(votes["03a01Fa"].values()) == pytest.approx(20.0) and len(votes["03a01Fa"]) == 7
    assert votes["16b10Tb"] is None  # not in the test's table


def test_cremad_votes_from_voice_only_ratings_or_the_tabulated_table(tmp_path):
    touch(tmp_path, "AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1002_IEO_HAP_HI.wav")
    (tmp_path / "processedResults").mkdir()
    (tmp_path / "processedResults" / "tabulatedVotes.csv").write_text(
        '"","A","D","F","H","N","S","fileName","numResponses","agreement","emoVote"\n'
        '"1",7,0,1,0,2,0,"1001_DFA_ANG_XX",10,0.7,"A"\n')
    scan = CORPORA["cremad"].scan(tmp_path / "AudioWAV")  # the tables sit beside AudioWAV
    votes = {u.id: u.votes for u in scan.utterances}
    assert votes == {"1001_DFA_ANG_XX": {"anger": 7.0, "fear": 1.0, "neutral": 2.0}, "1002_IEO_HAP_HI": None}
    # The per-rating table wins, and only its voice-only (queryType 1) ratings count.
    (tmp_path / "finishedResponses.csv").write_text(
        "localid,pos,ans,ttr,queryType,numTries,clipNum,questNum,subType,clipName,sessionNums,respEmo\n"
        "a,1,A_50,900,1,0,1,1,4,1001_DFA_ANG_XX,1,A\n"
        "b,1,N_50,900,1,0,1,1,4,1001_DFA_ANG_XX,2,N\n"
        "c,1,H_50,900,3,0,1,1,4,1001_DFA_ANG_XX,3,H\n"
        "d,1,H_80,900,1,0,2,1,4,1002_IEO_HAP_HI,4,H\n")
    scan = CORPORA["cremad"].scan(tmp_path)
    assert {u.id: u.votes for u in scan.utterances} == {"1001_DFA_ANG_XX": {"anger": 1.0, "neutral": 1.0},
                                                        "1002_IEO_HAP_HI": {"happy": 1.0}}


@pytest.mark.parametrize("corpus", ["emodb", "casia", "savee", "ravdess", "tess", "cremad", "urdu"])
def test_adapters_reject_other_corpora(corpus):
    samples = {
        "emodb": "03a01Fa.wav", "casia": "liuchang/angry/201.wav", "savee": "DC/a01.wav",
        "ravdess": "Actor_01/03-01-05-01-02-01-01.wav", "tess": "OAF_angry/OAF_back_angry.wav",
        "cremad": "AudioWAV/1001_DFA_ANG_XX.wav", "urdu": "Angry/SM1_F10_A010.wav",
    }
    for other, relpath in samples.items():
        parsed = CORPORA[corpus].parse(relpath)
        assert isinstance(parsed, str) == (other != corpus), (corpus, relpath, parsed)


# --- scans -----------------------------------------------------------------------------------------

def test_emodb_scan_skips_and_duplicates(tmp_path):
    touch(tmp_path, "wav/03a01Fa.wav", "wav/03a01Fa.flac", "wav/16b10Wb.wav", "wav/03a01Xa.wav",
          "wav/readme.wav", "wav/notes.txt", "wav/.hidden03a01Na.wav")
    scan = CORPORA["emodb"].scan(tmp_path)
    assert scan.classes == list(CORPORA["emodb"].classes)
    assert [(u.id, u.label, u.speaker, u.text) for u in scan.utterances] == [
        ("03a01Fa", "happiness", "03", "a01"), ("16b10Wb", "anger", "16", "b10")]
    first = scan.utterances[0]
    assert Path(first.path).is_absolute() and first.path.endswith("03a01Fa.flac") and first.votes is None
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert set(reasons) == {"03a01Fa.wav", "03a01Xa.wav", "readme.wav"}
    assert "duplicate utterance id '03a01Fa'" in reasons["03a01Fa.wav"]
    assert "unknown emodb emotion letter 'X'" in reasons["03a01Xa.wav"]
    assert "does not match the emodb pattern" in reasons["readme.wav"]


def test_casia_scan(tmp_path):
    touch(tmp_path, "CASIA/liuchang/angry/201.wav", "CASIA/wangzhe/Happy/201.wav",
          "CASIA/wangzhe/bored/201.wav")
    scan = CORPORA["casia"].scan(tmp_path)
    assert [u.id for u in scan.utterances] == ["liuchang_angry_201", "wangzhe_happy_201"]
    assert [u.speaker for u in scan.utterances] == ["liuchang", "wangzhe"]
    assert [u.text for u in scan.utterances] == ["201", "201"]  # one sentence, two speakers
    assert len(scan.skipped) == 1 and "bored" in scan.skipped[0].reason


def test_savee_flat_and_folder_layouts_give_same_ids(tmp_path):
    touch(tmp_path, "flat/DC_a01.wav", "flat/JE_sa02.wav", "nested/DC/a01.wav", "nested/JE/sa02.wav")
    flat = CORPORA["savee"].scan(tmp_path / "flat")
    nested = CORPORA["savee"].scan(tmp_path / "nested")
    assert [(u.id, u.label, u.speaker, u.text) for u in flat.utterances] == \
        [(u.id, u.label, u.speaker, u.text) for u in nested.utterances] == \
        [("DC_a01", "anger", "DC", "a01"), ("JE_sa02", "sadness", "JE", "sa02")]
    both = CORPORA["savee"].scan(tmp_path)
    assert len(both.utterances) == 2 and all("duplicate utterance id" in s.reason for s in both.skipped)


@pytest.mark.parametrize("relpath, expected", [
    ("Angry/SM1_F10_A010.flac", ("SM1_F10_A010", "angry", "SM1", None)),
    ("urdu/Happy/SF4_F3_H012.wav", ("SF4_F3_H012", "happy", "SF4", None)),
    ("SM25_F1_N100.wav", ("SM25_F1_N100", "neutral", "SM25", None)),  # flat: the letter decides
    ("sad/SM2_F2_S002.wav", ("SM2_F2_S002", "sad", "SM2", None)),
    ("Happy/SM1_F10_A010.wav", "names emotion 'angry' but lies in folder 'Happy'"),
    ("Angry/SM1_F10_X010.wav", "unknown urdu emotion letter 'X'"),
    ("Angry/SM1_A010.wav", "does not match the urdu pattern"),
])
def test_urdu_names(relpath, expected):
    check("urdu", relpath, expected)


def test_urdu_scan_speakers_and_classes(tmp_path):
    touch(tmp_path, "Angry/SM1_F10_A010.flac", "Neutral/SM1_F11_N001.flac", "Sad/SF2_F1_S001.flac",
          "Happy/SF2_F1_S002.flac")
    scan = CORPORA["urdu"].scan(tmp_path)
    assert scan.classes == ["angry", "happy", "neutral", "sad"]
    assert [(u.id, u.label, u.speaker) for u in scan.utterances] == [
        ("SM1_F10_A010", "angry", "SM1"), ("SM1_F11_N001", "neutral", "SM1"), ("SF2_F1_S001", "sad", "SF2")]
    assert [Path(s.path).name for s in scan.skipped] == ["SF2_F1_S002.flac"]


def test_ravdess_scan_skips_song(tmp_path):
    touch(tmp_path, "Actor_01/03-01-05-01-02-01-01.wav", "Actor_01/03-02-05-01-02-01-01.wav")
    scan = CORPORA["ravdess"].scan(tmp_path)
    assert [(u.label, u.text) for u in scan.utterances] == [("angry", "02")]
    assert [Path(s.path).name for s in scan.skipped] == ["03-02-05-01-02-01-01.wav"]
    assert "speech" in scan.skipped[0].reason


def test_tess_scan_normalises_ids(tmp_path):
    touch(tmp_path, "OAF_angry/OAF_back_angry.wav", "YAF_pleasant_surprised/YAF_bar_ps.wav",
          "YAF_pleasant_surprised/yaf_BAR_pleasant_surprised.wav")
    scan = CORPORA["tess"].scan(tmp_path)
    assert [u.id for u in scan.utterances] == ["OAF_back_angry", "YAF_bar_pleasant_surprise"]
    assert [u.text for u in scan.utterances] == ["back", "bar"]
    assert scan.classes[5] == "pleasant_surprise"
    assert len(scan.skipped) == 1 and "duplicate" in scan.skipped[0].reason


# --- auto-detection --------------------------------------------------------------------------------

LAYOUTS = {
    "emodb": ["wav/03a01Fa.wav", "wav/03a01Wa.wav", "wav/16b10Tb.wav"],
    "casia": ["liuchang/angry/201.wav", "wangzhe/sad/202.wav", "ZhaoZuoxiang/surprise/203.wav"],
    "savee": ["AudioData/DC/a01.wav", "AudioData/JE/sa01.wav", "AudioData/KL/su01.wav"],
    "ravdess": ["Actor_01/03-01-01-01-01-01-01.wav", "Actor_02/03-01-05-02-01-01-02.wav",
                "Actor_02/03-01-08-02-02-01-02.wav"],
    "tess": ["OAF_angry/OAF_back_angry.wav", "YAF_sad/YAF_bar_sad.wav", "OAF_Pleasant_surprise/OAF_bite_ps.wav"],
    "cremad": ["AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1002_IEO_HAP_HI.wav", "AudioWAV/1091_WSI_SAD_LO.wav"],
    "urdu": ["Angry/SM1_F10_A010.flac", "Neutral/SF3_F2_N001.flac", "Sad/SM12_F7_S099.flac"],
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_detect_each_layout(tmp_path, name):
    touch(tmp_path, *LAYOUTS[name], "extra/readme.wav")  # one stray file: 3 of 4 still parse
    assert detect(tmp_path).name == name
    corpus, scan = scan_corpus(tmp_path)
    assert corpus.name == name
    assert len(scan.utterances) == 3 and len(scan.skipped) == 1


def test_detect_savee_flat_layout(tmp_path):
    touch(tmp_path, "ALL/DC_a01.wav", "ALL/JK_n02.wav")
    assert detect(tmp_path).name == "savee"


def test_detect_with_manifest_is_csv(tmp_path):
    assert detect(tmp_path / "anything", manifest="m.csv").name == "csv"


def test_detect_no_majority(tmp_path):
    touch(tmp_path, "clips/one.wav", "clips/two.wav", "03a01Fa.wav")
    with pytest.raises(CorpusError) as e:
        detect(tmp_path)
    message = str(e.value)
    assert "casia, cremad, emodb, ravdess, savee, tess, urdu" in message and "--corpus csv --manifest FILE" in message
    assert "emodb, 33%" in message


def test_detect_folder_without_audio(tmp_path):
    touch(tmp_path, "notes.txt", "sub/labels.csv")
    with pytest.raises(CorpusError, match=r"expected a folder holding audio files \(\.wav, \.flac, \.ogg\)") as e:
        detect(tmp_path)
    assert repr(str(tmp_path)) in str(e.value)
    with pytest.raises(CorpusError, match="holding audio files"):
        scan_corpus(tmp_path, corpus="emodb")


def test_detect_missing_folder(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(CorpusError, match="not found") as e:
        detect(missing)
    assert repr(str(missing)) in str(e.value)
    with pytest.raises(CorpusError, match="not found"):
        scan_corpus(missing, corpus="csv", manifest=tmp_path / "m.csv")


def test_scan_corpus_root_is_a_file(tmp_path):
    touch(tmp_path, "03a01Fa.wav")
    with pytest.raises(CorpusError, match="expected a corpus folder, not a file"):
        scan_corpus(tmp_path / "03a01Fa.wav", corpus="emodb")


def test_scan_corpus_explicit_corpus_and_manifest_mismatch(tmp_path):
    touch(tmp_path, "03a01Fa.wav")
    corpus, scan = scan_corpus(tmp_path, corpus="emodb")
    assert corpus is CORPORA["emodb"] and [u.id for u in scan.utterances] == ["03a01Fa"]
    with pytest.raises(CorpusError, match="--manifest only with --corpus csv"):
        scan_corpus(tmp_path, corpus="emodb", manifest=tmp_path / "m.csv")
    with pytest.raises(CorpusError, match="corpus='auto'"):
        get_corpus("auto")


# --- csv manifests ---------------------------------------------------------------------------------

def write_manifest(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_manifest_scan(tmp_path):
    root = tmp_path / "corpus"
    touch(root, "s01/a.wav", "s01/b.flac", "s02/c.wav", "s02/d.wav", "s02/e.wav", "s02/f.wav")
    outside = tmp_path / "elsewhere" / "g.wav"
    touch(outside.parent, outside.name)
    manifest = write_manifest(tmp_path / "m.csv", "\n".join([
        "path,label,speaker,votes",
        "s01/a.wav,anger,s01,anger:3;neutral:1",
        "s01/b.flac,neutral,,",
        f"{root / 's02/c.wav'},anger,s02,",  # absolute, inside root
        "s02/missing.wav,anger,s02,",
        "s02/d.wav,,s02,",
        "s02/e.wav,anger,s02,anger:three",
        "s01/a.wav,neutral,s01,",  # same path → same id
        f"{outside},neutral,,",  # absolute, outside root
        "",
    ]))
    corpus, scan = scan_corpus(root, corpus="csv", manifest=manifest)
    assert corpus.name == "csv"
    assert scan.classes == ["anger", "neutral"]
    assert [(u.id, u.label, u.speaker) for u in scan.utterances] == [
        ("s01/a", "anger", "s01"), ("s01/b", "neutral", None), ("s02/c", "anger", "s02"),
        (outside.with_suffix("").as_posix(), "neutral", None)]
    a = scan.utterances[0]
    assert a.votes == {"anger": 3.0, "neutral": 1.0} and scan.utterances[1].votes is None
    assert all(u.text is None for u in scan.utterances)  # no text column
    assert a.path == str(root.resolve() / "s01" / "a.wav")
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert reasons["missing.wav"] == "file not found"
    assert scan.skipped[0] == Skipped(str(root.resolve() / "s02" / "missing.wav"), "file not found")
    assert reasons["d.wav"] == "empty label"
    assert "malformed votes 'anger:three'" in reasons["e.wav"]
    assert "duplicate utterance id 's01/a'" in reasons["a.wav"]
    assert len(scan.skipped) == 4


def test_csv_manifest_id_column_and_auto(tmp_path):
    touch(tmp_path, "x/1.wav", "x/2.wav")
    manifest = write_manifest(tmp_path / "m.csv", "\ufeffPath, Label ,id\nx/1.wav,calm,one\nx/2.wav,sad,\n")
    corpus, scan = scan_corpus(tmp_path, manifest=manifest)  # auto + manifest → csv
    assert corpus.name == "csv"
    assert [(u.id, u.label) for u in scan.utterances] == [("one", "calm"), ("x/2", "sad")]
    assert scan.classes == ["calm", "sad"]


def test_csv_text_column(tmp_path):
    touch(tmp_path, "1.wav", "2.wav", "3.wav")
    manifest = write_manifest(tmp_path / "m.csv", "path,label,speaker,text,session\n1.wav,anger,s1,kids,A\n"
                                                  "2.wav,sad,s2, kids ,A\n3.wav,sad,s1,,\n")
    scan = CORPORA["csv"].scan(tmp_path, manifest=manifest)
    assert [(u.id, u.text, u.session) for u in scan.utterances] == [("1", "kids", "A"), ("2", "kids", "A"),
                                                                    ("3", None, None)]


def test_csv_votes_for_unknown_class_are_skipped(tmp_path):
    touch(tmp_path, "1.wav", "2.wav")
    manifest = write_manifest(tmp_path / "m.csv", "path,label,votes\n1.wav,anger,anger:2;joy:1\n2.wav,anger,anger:1\n")
    scan = CORPORA["csv"].scan(tmp_path, manifest=manifest)
    assert [u.id for u in scan.utterances] == ["2"]
    assert len(scan.skipped) == 1 and "votes name joy" in scan.skipped[0].reason


@pytest.mark.parametrize("cell, expected", [
    ("anger:3;neutral:1", {"anger": 3.0, "neutral": 1.0}),
    (" anger : 2.5 ; ", {"anger": 2.5}),
    ("anger:0;sad:1", {"anger": 0.0, "sad": 1.0}),
    ("anger", {"anger": 1.0}), ("anger;anger; neutral", {"anger": 2.0, "neutral": 1.0}),
    ("anger;neutral:1", ValueError), ("anger:x", ValueError), (":3", ValueError), ("anger:-1", ValueError),
    ("anger:1;anger:2", ValueError), ("anger:0", ValueError), ("anger:nan", ValueError), (";", ValueError),
])
def test_parse_votes(cell, expected):
    if expected is ValueError:
        with pytest.raises(ValueError):
            parse_votes(cell)
    else:
        assert parse_votes(cell) == expected


def test_csv_missing_column(tmp_path):
    touch(tmp_path, "1.wav")
    manifest = write_manifest(tmp_path / "m.csv", "file,label\n1.wav,anger\n")
    with pytest.raises(CorpusError, match=r"expected a CSV file with columns "
                                          r"path,label\[,speaker\]\[,votes\]\[,id\]\[,text\]\[,session\] "
                                          r"\(missing: path\)"):
        scan_corpus(tmp_path, corpus="csv", manifest=manifest)
    empty = write_manifest(tmp_path / "empty.csv", "")
    with pytest.raises(CorpusError, match="missing: path,label"):
        scan_corpus(tmp_path, corpus="csv", manifest=empty)


def test_csv_missing_manifest_file(tmp_path):
    with pytest.raises(CorpusError,
                       match=r"Received: manifest='.*nope\.csv'; expected a CSV file with columns path,label"):
        scan_corpus(tmp_path, corpus="csv", manifest=tmp_path / "nope.csv")


def test_csv_requires_manifest(tmp_path):
    touch(tmp_path, "1.wav")
    with pytest.raises(CorpusError, match="--manifest"):
        scan_corpus(tmp_path, corpus="csv")
    assert CORPORA["csv"].match_fraction(["1.wav"]) == 0.0


def test_csv_folder_without_audio_is_fine(tmp_path):
    manifest = write_manifest(tmp_path / "m.csv", "path,label\nmissing.wav,anger\n")
    corpus, scan = scan_corpus(tmp_path, corpus="csv", manifest=manifest)
    assert scan.utterances == [] and scan.classes == [] and scan.skipped[0].reason == "file not found"


def test_utterance_is_plain_data():
    u = Utterance("id", "/p.wav", "anger")
    assert (u.speaker, u.votes, u.text) == (None, None, None)
