"""The Label Studio interchange against a real Label Studio, over its REST API with legacy token auth.

The review set's export becomes a project (Label Studio validates the labelling config), its tasks are imported,
four annotators who joined through the invite link each take their tasks from the label stream and submit ratings
on every dimension, the project is exported (the plain JSON export, users by id; and an export snapshot, users by
email) and read back with ``deepmedix review import-labelstudio``. Every rating must arrive un-blinded, and Table 2
must equal the one for the same ratings made in the review app's own store.
"""

from __future__ import annotations

import json
import random
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest

from deepmedix.annotation.create import AnnotatorSpec, create_review
from deepmedix.annotation.labelstudio import export_labelstudio, import_labelstudio
from deepmedix.annotation.results import results_from_store, table_rows, to_markdown
from deepmedix.annotation.store import PREFERENCE_DIMENSIONS, STEP_DIMENSIONS, ReviewStore
from deepmedix.cli import main
from tests.annotation.conftest import ANNOTATORS, write_predictions
from tests.annotation.labelstudio_server import LabelStudio, sign_up_annotator

# Both tests share one Label Studio server (a session fixture): keep them on one xdist worker (make test uses
# --dist loadgroup), so the server starts once.
pytestmark = pytest.mark.xdist_group("labelstudio")

MODELS = ["DeepMedix-R1", "Qwen2.5-VL-7B"]
EMAIL_DOMAIN = "hospital.example"  # the email's local part is the annotator's name in the review set

Rating = tuple[str, str, str, int, int, int]  # annotator, sample, dimension, model (-1: pair), step (-1), value


def planned_ratings(review_dir: Path, seed: int = 11) -> list[Rating]:
    """Every rating every annotator gives, in model terms, drawn at random so the groups disagree now and then."""
    rng = random.Random(seed)
    rows: list[Rating] = []
    with ReviewStore(review_dir) as store:
        for annotator in store.annotators():
            for sid in store.sample_ids():
                for model, output in store.outputs(sid).items():
                    for step in range(len(output["steps"])):
                        rows += [(annotator.name, sid, dim, model, step, rng.randrange(2)) for dim in STEP_DIMENSIONS]
                    rows.append((annotator.name, sid, "completeness", model, -1, rng.randrange(2)))
                rows += [(annotator.name, sid, dim, -1, -1, rng.randrange(2)) for dim in PREFERENCE_DIMENSIONS]
    return rows


def left_model_shown(task_data: dict[str, Any], outputs: dict[int, dict[str, Any]]) -> int:
    """Which model the task shows on the Left, read from what the annotator sees (the first step's text)."""
    shown = task_data["left_step_1"]
    matches = [m for m, out in outputs.items() if out["steps"] and shown.endswith(out["steps"][0]["text"])]
    assert len(matches) == 1, shown
    return matches[0]


def choice_results(ratings: list[Rating], left_model: int, controls: dict[str, Any]) -> list[dict[str, Any]]:
    """The annotation result Label Studio's editor records for these ratings: one ``choices`` item per control,
    aimed at the object the project's parsed config says the control belongs to."""
    side_of = {left_model: "left", 1 - left_model: "right"}
    results = []
    for i, (_, _, dim, model, step, value) in enumerate(ratings):
        if dim in PREFERENCE_DIMENSIONS:
            name, choice = dim, side_of[value].title()
        elif dim == "completeness":
            name, choice = f"{side_of[model]}_completeness", "Yes" if value else "No"
        else:
            name, choice = f"{side_of[model]}_step_{step + 1}_{dim}", "Yes" if value else "No"
        control = controls[name]  # a control our config does not have would be a KeyError here
        assert control["type"] == "Choices" and choice in control["labels"], (name, control)
        results.append(
            {
                "id": f"c{i}",
                "from_name": name,
                "to_name": control["to_name"][0],
                "type": "choices",
                "origin": "manual",
                "value": {"choices": [choice]},
            }
        )
    return results


def annotate_from_label_stream(
    ls: LabelStudio, token: str, project_id: int, plan: list[Rating], review_dir: Path
) -> list[int]:
    """One annotator's session: ask the label stream for the next task until none is left, submit each."""
    done: list[int] = []
    with ReviewStore(review_dir) as store, ls.client(token) as api:
        me = api.get("/api/current-user/whoami").json()
        name = me["email"].split("@")[0]
        controls = api.get(f"/api/projects/{project_id}").json()["parsed_label_config"]
        while True:
            nxt = api.get(f"/api/projects/{project_id}/next/")
            if nxt.status_code == 404:  # "There are no tasks for …": this annotator is through
                break
            nxt.raise_for_status()
            task = nxt.json()
            assert task["id"] not in done, "the label stream handed the same task twice"
            sid = task["data"]["review_sample_id"]
            mine = [r for r in plan if r[0] == name and r[1] == sid]
            result = choice_results(mine, left_model_shown(task["data"], store.outputs(sid)), controls)
            posted = api.post(f"/api/tasks/{task['id']}/annotations/", json={"result": result, "lead_time": 12.5})
            assert posted.status_code == 201, posted.text
            assert posted.json()["completed_by"] == me["id"]
            done.append(task["id"])
    return done


def export_snapshot(api: httpx.Client, project_id: int) -> list[dict[str, Any]]:
    """The export dialog's way: a snapshot, here with the annotators named by email rather than by id."""
    created = api.post(
        f"/api/projects/{project_id}/exports",
        json={"title": "review", "serialization_options": {"annotations__completed_by": {"only_id": False}}},
    )
    assert created.status_code == 201, created.text
    export_id = created.json()["id"]
    deadline = time.monotonic() + 120
    while (status := api.get(f"/api/projects/{project_id}/exports/{export_id}").json()["status"]) != "completed":
        assert status != "failed" and time.monotonic() < deadline, status
        time.sleep(0.2)
    download = api.get(f"/api/projects/{project_id}/exports/{export_id}/download", params={"exportType": "JSON"})
    download.raise_for_status()
    return download.json()


def stored(review_dir: Path) -> set[Rating]:
    with ReviewStore(review_dir) as store:
        rows = store.ratings()
    assert {r["origin"] for r in rows} == {"labelstudio"}
    return {(r["annotator"], r["sample_id"], r["dimension"], r["model"], r["step"], r["value"]) for r in rows}


@pytest.mark.slow
def test_round_trip_through_a_real_label_studio(
    labelstudio: LabelStudio, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ls = labelstudio
    predictions = write_predictions(tmp_path / "preds")
    # The review folder sits in Label Studio's local-files document root: image URLs are `?d=<folder>/images/…`.
    review = create_review(list(predictions), MODELS, ls.files_root / "review", ANNOTATORS, n_samples=3, seed=7)
    export = export_labelstudio(review.dir, tmp_path / "ls" / "tasks.json")
    tasks = json.loads(export.tasks.read_text())
    settings = json.loads(export.project.read_text())
    plan = planned_ratings(review.dir)
    # alice will change her mind on this one in Label Studio; the plan then holds the new value.
    first_pref = next(r for r in plan if r[0] == "alice" and r[2] == "overall_preference")

    with ls.client() as admin:
        # The project from the exported settings: Label Studio validates the labelling config here.
        created = admin.post("/api/projects", json=settings)
        assert created.status_code == 201, created.text
        project = created.json()
        pid = project["id"]
        assert project["maximum_annotations"] == len(ANNOTATORS) and project["show_skip_button"] is False
        controls = project["parsed_label_config"]
        for side in ("left", "right"):
            for i in (1, 2, 3):
                for dim in STEP_DIMENSIONS:
                    assert controls[f"{side}_step_{i}_{dim}"]["to_name"] == [f"{side}_step_{i}"]
            assert controls[f"{side}_completeness"]["labels"] == ["Yes", "No"]
        assert controls["overall_preference"]["labels"] == ["Left", "Right"]
        assert controls["regions"]["type"] == "RectangleLabels"

        imported = admin.post(f"/api/projects/{pid}/import", json=tasks)
        assert imported.status_code == 201, imported.text
        assert imported.json()["task_count"] == 3 and imported.json()["prediction_count"] == 3

        # The images, through Label Studio's local-files storage over the review folder's images.
        storage = admin.post(
            "/api/storages/localfiles",
            json={"project": pid, "path": str(review.dir / "images"), "title": "review images", "use_blob_urls": True},
        )
        assert storage.status_code == 201, storage.text
        ls_tasks = admin.get("/api/tasks", params={"project": pid, "page_size": 100}).json()["tasks"]
        with ReviewStore(review.dir) as store:
            for task in ls_tasks:
                image = admin.get(task["data"]["image"])
                sample = store.sample(task["data"]["review_sample_id"])
                assert sample is not None
                assert image.status_code == 200 and image.content == (review.dir / sample["image"]).read_bytes()
        # The steps' boxes arrive as pre-annotations on the image.
        predicted = admin.get("/api/predictions", params={"task": ls_tasks[0]["id"]}).json()
        assert {r["type"] for r in predicted[0]["result"]} == {"rectanglelabels"}

        # Four annotators join through the invite link and each works through the label stream.
        tokens = {a.name: sign_up_annotator(ls, f"{a.name}@{EMAIL_DOMAIN}", f"{a.name}-pass-2024") for a in ANNOTATORS}
        for name, token in tokens.items():
            done = annotate_from_label_stream(ls, token, pid, plan, review.dir)
            assert len(done) == len(tasks), f"{name} got {len(done)} of {len(tasks)} tasks from the label stream"

        # alice changes her mind on one overall preference: the export carries the updated annotation.
        with ls.client(tokens["alice"]) as alice:
            alice_id = alice.get("/api/current-user/whoami").json()["id"]
            task_id = next(t["id"] for t in ls_tasks if t["data"]["review_sample_id"] == first_pref[1])
            annotations = alice.get(f"/api/tasks/{task_id}/annotations/").json()
            mine = [a for a in annotations if a["completed_by"] == alice_id]
            assert len(mine) == 1
            flipped = (*first_pref[:5], 1 - first_pref[5])
            task_data = next(t["data"] for t in ls_tasks if t["id"] == task_id)
            with ReviewStore(review.dir) as store:
                left = left_model_shown(task_data, store.outputs(first_pref[1]))
            result = [r for r in mine[0]["result"] if r["from_name"] != "overall_preference"] + choice_results(
                [flipped], left, controls
            )
            patched = alice.patch(f"/api/annotations/{mine[0]['id']}/", json={"result": result})
            assert patched.status_code == 200, patched.text
        plan = [flipped if r == first_pref else r for r in plan]

        plain_export = admin.get(f"/api/projects/{pid}/export", params={"exportType": "JSON"})
        assert plain_export.status_code == 200
        snapshot = export_snapshot(admin, pid)
        users = {u["email"]: u["id"] for u in admin.get("/api/users/").json()}

    # The plain export names users by id only: map them with --users, as the docs say.
    assert {type(a["completed_by"]) for t in plain_export.json() for a in t["annotations"]} == {int}
    by_id = tmp_path / "review-by-id"
    shutil.copytree(review.dir, by_id)  # the Label Studio layout is stored in the review set by the export
    export_file = tmp_path / "ls" / "export.json"
    export_file.write_bytes(plain_export.content)
    user_map = ",".join(f"{users[f'{a.name}@{EMAIL_DOMAIN}']}:{a.name}" for a in ANNOTATORS)
    capsys.readouterr()
    code = main(
        ["review", "import-labelstudio", "--dir", str(by_id), "--export", str(export_file), "--users", user_map]
    )
    assert code == 0
    n = len(plan)
    assert f"imported {n} ratings from {len(ANNOTATORS) * len(tasks)} annotations (0 skipped" in capsys.readouterr().out
    assert stored(by_id) == set(plan)

    # The snapshot names users by email: no map needed.
    by_email = tmp_path / "review-by-email"
    shutil.copytree(review.dir, by_email)
    snapshot_file = tmp_path / "ls" / "snapshot.json"
    snapshot_file.write_text(json.dumps(snapshot))
    assert import_labelstudio(by_email, snapshot_file)["ratings"] == n
    assert stored(by_email) == set(plan)

    # The same ratings made in the review app's own store.
    app = create_review(list(predictions), MODELS, tmp_path / "review-app", ANNOTATORS, n_samples=3, seed=7)
    with ReviewStore(app.dir) as store:
        store.put_many(plan, origin="web")
    app_results = results_from_store(app.dir)[0]
    for imported_dir in (by_id, by_email):
        ls_results = results_from_store(imported_dir)[0]
        assert table_rows(ls_results) == table_rows(app_results)
        assert to_markdown(ls_results) == to_markdown(app_results)
        assert repr(ls_results) == repr(app_results)  # every cell and agreement, n included (repr: NaN == NaN)
    # The ratings are not degenerate: the table has both groups, and groups agree on some items and not others.
    assert app_results.groups == ["1", "2"]
    assert any(0 < a.percent_agreement < 1 for a in app_results.agreements)


@pytest.mark.browser
def test_label_studio_editor_shows_the_task_and_its_submission_imports(
    labelstudio: LabelStudio, tmp_path: Path
) -> None:
    """An annotator in Label Studio's own editor (headless Chromium): the exported config renders with the image and
    the steps' regions, and what the editor records on Submit is what the import reads."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.annotation.test_browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed")
    ls = labelstudio
    annotators = [AnnotatorSpec("erin", "1"), AnnotatorSpec("frank", "2")]
    review = create_review(
        list(write_predictions(tmp_path / "preds")), MODELS, ls.files_root / "review-editor", annotators, 3, seed=5
    )
    export = export_labelstudio(review.dir, tmp_path / "ls" / "tasks.json")
    # The editor shows the Choices in the config's order.
    control_order = [el.get("name") for el in ET.fromstring(export.config.read_text()).iter("Choices")]
    with ls.client() as admin:
        pid = admin.post("/api/projects", json=json.loads(export.project.read_text())).json()["id"]
        admin.post(f"/api/projects/{pid}/import", json=json.loads(export.tasks.read_text())).raise_for_status()
        admin.post(
            "/api/storages/localfiles", json={"project": pid, "path": str(review.dir / "images"), "use_blob_urls": True}
        ).raise_for_status()
    email, password = f"erin@{EMAIL_DOMAIN}", "erin-pass-2024"
    token = sign_up_annotator(ls, email, password)

    page_errors: list[str] = []
    outside: list[str] = []  # requests the page sent anywhere but this Label Studio

    def note_outside(request: Any) -> None:
        if request.url.startswith(("http:", "https:")) and not request.url.startswith(ls.url):
            outside.append(request.url)

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("request", note_outside)
            page.goto(f"{ls.url}/user/login/")
            page.fill("input[name=email]", email)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(f"{ls.url}/**")
            page.goto(f"{ls.url}/projects/{pid}/data?labeling=1")
            groups = page.locator(".lsf-choices")
            groups.nth(len(control_order) - 1).wait_for()
            assert groups.count() == len(control_order)
            # The image came through local-files storage at its own size.
            page.wait_for_function("document.querySelector('img[alt=image]')?.naturalWidth === 400")
            # Alternate the answers: Yes/Left on even controls, No/Right on odd ones.
            for k in range(len(control_order)):
                groups.nth(k).locator("label").nth(k % 2).click()
            page.get_by_test_id("bottombar-submit-button").click()
            with ls.client(token) as api:
                deadline = time.monotonic() + 60
                while not (submitted := api.get(f"/api/projects/{pid}/export", params={"exportType": "JSON"}).json()):
                    assert time.monotonic() < deadline, "the editor's submission did not arrive"
                    time.sleep(0.5)
        finally:
            browser.close()
    assert page_errors == [] and outside == []

    (task,) = submitted
    (annotation,) = task["annotations"]
    results = annotation["result"]

    # The steps' regions, loaded from the pre-annotations, are kept in the annotation as they were.
    def boxes(regions: list[dict[str, Any]]) -> dict[str, tuple[list[str], list[float]]]:
        keys = ("x", "y", "width", "height")
        return {r["id"]: (r["value"]["rectanglelabels"], [r["value"][k] for k in keys]) for r in regions}

    predicted = boxes(annotation["prediction"]["result"])
    kept = boxes([r for r in results if r["type"] == "rectanglelabels"])
    assert kept.keys() == predicted.keys() and len(kept) >= 3
    for region, (labels, xywh) in kept.items():
        assert labels == predicted[region][0] and xywh == pytest.approx(predicted[region][1])
    clicked = {r["from_name"]: r["value"]["choices"] for r in results if r["type"] == "choices"}
    assert list(clicked) == control_order

    sid = task["data"]["review_sample_id"]
    with ReviewStore(review.dir) as store:
        outputs = store.outputs(sid)
    left = left_model_shown(task["data"], outputs)
    side_model = {"left": left, "right": 1 - left}
    expected: set[Rating] = set()
    for k, name in enumerate(control_order):
        side, _, rest = name.partition("_")
        if name in PREFERENCE_DIMENSIONS:
            expected.add(("erin", sid, name, -1, -1, side_model[("left", "right")[k % 2]]))
        elif rest == "completeness":
            expected.add(("erin", sid, "completeness", side_model[side], -1, 1 - k % 2))
        else:
            step, dim = int(rest.split("_")[1]) - 1, rest.split("_")[2]
            if step < len(outputs[side_model[side]]["steps"]):  # the shorter reasoning's extra step is empty
                expected.add(("erin", sid, dim, side_model[side], step, 1 - k % 2))
    export_file = tmp_path / "ls" / "export.json"
    export_file.write_text(json.dumps(submitted))
    with ls.client() as admin:
        erin_id = next(u["id"] for u in admin.get("/api/users/").json() if u["email"] == email)
    assert import_labelstudio(review.dir, export_file, {str(erin_id): "erin"})["ratings"] == len(expected)
    assert stored(review.dir) == expected
