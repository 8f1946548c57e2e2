"""End to end in real headless Chromium: log in, label a pairwise task by keyboard, undo, rank a
4-way task by keyboard and by drag-and-drop, see progress; an admin exports; the exported rows are
exactly what was entered."""
import json

import pytest

from alignstack.data.formats import validate_row

pytestmark = pytest.mark.browser


def _wait(driver, cond, timeout=10):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: cond(d))


def _login(driver, base, name, password):
    from selenium.webdriver.common.by import By

    driver.get(base + "/login")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login").click()
    _wait(driver, lambda d: d.current_url.rstrip("/") == base)


def _keys(driver, *keys):
    from selenium.webdriver.common.action_chains import ActionChains

    chain = ActionChains(driver)
    for k in keys:
        chain.send_keys(k)
    chain.perform()


def _state(driver):
    """(task id, my label count, idempotency key of this view) of the label page."""
    return driver.execute_script(
        "const a = document.getElementById('app');"
        "return [a.dataset.task, document.getElementById('progress-mine').textContent, a.dataset.idempotencyKey];")


def _reloaded(driver, old_key):
    return lambda d: _state(d)[2] not in (None, old_key)


def test_label_undo_rank_and_export(tmp_path, seed, server_factory, chrome):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url = f"sqlite:///{tmp_path / 'browser.db'}"
    engine, _ = seed(url)
    engine.dispose()
    srv = server_factory(url)
    d = chrome

    _login(d, srv.base, "ann1", "pw1")
    assert "pw" in d.find_element(By.CSS_SELECTOR, ".project a").text

    # --- pairwise, entirely by keyboard: 2 (second is better), s (better), z (first unsafe), Enter
    d.get(srv.base + "/projects/pw")
    assert "Pick the more helpful answer." in d.find_element(By.ID, "instructions").text
    task1, mine, key = _state(d)
    assert mine == "0"
    prompt_text = d.find_element(By.ID, "prompt").text
    _keys(d, "2", "s", "z")
    assert "selected" in d.find_element(By.ID, "choice-1").get_attribute("class")
    assert "selected" in d.find_element(By.ID, "strength-better").get_attribute("class")
    assert d.find_element(By.ID, "unsafe-0").is_selected()
    _keys(d, Keys.ENTER)
    _wait(d, _reloaded(d, key))
    task2, mine, key = _state(d)
    assert mine == "1" and task2 != task1

    # --- undo (u): the first task comes back, progress drops to 0, then relabel: 1, a, Enter
    _keys(d, "u")
    _wait(d, _reloaded(d, key))
    task, mine, key = _state(d)
    assert (task, mine) == (task1, "0")
    assert d.find_element(By.ID, "prompt").text == prompt_text
    _keys(d, "1", "a", Keys.ENTER)
    _wait(d, _reloaded(d, key))
    assert _state(d)[1] == "1"

    # --- 4-way ranking: keyboard moves, then a drag with the mouse
    d.get(srv.base + "/projects/rk")
    rtask, mine, key = _state(d)
    order = lambda: d.execute_script("return document.getElementById('app').currentRanking();")  # noqa: E731
    assert order() == [0, 1, 2, 3]
    ActionChains(d).key_down(Keys.SHIFT).send_keys(Keys.ARROW_DOWN).key_up(Keys.SHIFT).perform()  # move the selected (first) response down: [1, 0, 2, 3]
    assert order() == [1, 0, 2, 3]
    _keys(d, "j", "j", "1")  # select the 4th place (response 3), then move it to place 1: [3, 1, 0, 2]
    assert order() == [3, 1, 0, 2]
    # drag response 2 (now last) above response 1 (second place) -> [3, 2, 1, 0]
    handle = d.find_element(By.CSS_SELECTOR, "#item-2 .handle")
    target = d.find_element(By.ID, "item-1")
    ActionChains(d).click_and_hold(handle).move_to_element_with_offset(target, 0, -8).pause(0.1).release().perform()
    assert order() == [3, 2, 1, 0]
    positions = [e.text for e in d.find_elements(By.CSS_SELECTOR, ".rankitem .pos")]
    assert positions == ["1", "2", "3", "4"]
    d.find_element(By.ID, "unsafe-1").click()  # mark response 1 unsafe with the mouse
    _keys(d, Keys.ENTER)
    _wait(d, _reloaded(d, key))
    assert _state(d)[1] == "1"

    # --- progress on the project list
    d.get(srv.base + "/")
    text = d.find_element(By.TAG_NAME, "main").text
    assert "you: 1" in text and "1 / 6 labels" in text

    # --- admin: log out, log in as admin, see progress and agreement, export
    d.find_element(By.CSS_SELECTOR, "header form button").click()
    _wait(d, lambda d: "/login" in d.current_url)
    _login(d, srv.base, "admin", "admin-pw")
    d.get(srv.base + "/admin")
    row = d.find_element(By.CSS_SELECTOR, 'tr.project-row[data-project="pw"]').text
    assert "1 / 6 labels" in row and "n/a" in row
    links = [a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, "a.export")]
    assert any("/admin/projects/pw/export.jsonl?aggregate=all" in h for h in links)
    rows = {}
    for project in ("pw", "rk"):
        d.get(f"{srv.base}/admin/projects/{project}/export.jsonl?aggregate=all&inline=1")
        body = d.find_element(By.TAG_NAME, "body").text
        rows[project] = [json.loads(line) for line in body.splitlines() if line.strip()]
    (p,) = rows["pw"]
    validate_row("preference", p)
    assert p["annotator"] == "ann1" and p["strength"] == "significantly_better"
    assert p["meta"]["task_id"] == int(task1) and p["chosen_safe"] is True and p["rejected_safe"] is True
    assert p["chosen"][0]["content"].startswith("Leaves fall") and p["prompt"] == [{"role": "user", "content": "Write a haiku about autumn."}]
    (r,) = rows["rk"]
    validate_row("ranking", r)
    assert r["meta"]["task_id"] == int(rtask) and r["annotator"] == "ann1"
    assert r["ranking"] == [3, 2, 1, 0] and r["safe"] == [True, False, True, True]
    assert r["responses"][3] == "2"
