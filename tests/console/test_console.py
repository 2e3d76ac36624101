"""The operator console, driven in headless Chromium as a person would use it.

Against a fresh `lethe serve` (LETHE_URL) over a local Parquet lake (LAKE_DIR): sign in
with a pasted token, register a data mapper through the form (first with an id the API
refuses, whose message must show next to the field), queue a simple and a composite match,
start a dry run, then a real job, watch each reach `completed` without reloading the page
(the progress comes from the event stream), read the report's rows removed, export it, and
check the lake with pyarrow afterwards. Screenshots of each page go to SHOTS.
"""

import glob
import json
import os
import sys
import time
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
from selenium import webdriver
from selenium.common.exceptions import JavascriptException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

URL = os.environ["LETHE_URL"]
TOKEN = os.environ["LETHE_TOKEN"]
LAKE = os.environ["LAKE_DIR"]
SHOTS = os.environ["SHOTS"]
DOWNLOADS = os.environ["DOWNLOADS"]

# The lake: people in two country partitions, ids 0..39 in de and 100..139 in fr.
ROWS = {"de": list(range(0, 40)), "fr": list(range(100, 140))}
ERASED = {"de": [3], "fr": [112]}


def write_lake():
    for country, ids in ROWS.items():
        folder = os.path.join(LAKE, "people", f"country={country}")
        os.makedirs(folder, exist_ok=True)
        table = pa.table({
            "id": pa.array(ids, pa.int64()),
            "email": pa.array([f"person{i}@example.com" for i in ids]),
        })
        pq.write_table(table, os.path.join(folder, "part-0.parquet"), row_group_size=16)


def glue_database():
    """A Glue database in moto with one Parquet table, for the catalog browser."""
    import boto3
    glue = boto3.client("glue", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                        region_name=os.environ.get("AWS_REGION", "us-east-1"))
    name = f"console_{uuid.uuid4().hex[:8]}"
    glue.create_database(DatabaseInput={"Name": name})
    parquet = "org.apache.hadoop.hive.ql.io.parquet"
    glue.create_table(DatabaseName=name, TableInput={
        "Name": "customers",
        "StorageDescriptor": {
            "Columns": [{"Name": "id", "Type": "bigint"},
                        {"Name": "contact", "Type": "struct<email:string,phone:string>"}],
            "Location": "s3://console-lake/customers/",
            "InputFormat": f"{parquet}.MapredParquetInputFormat",
            "SerdeInfo": {"SerializationLibrary": f"{parquet}.serde.ParquetHiveSerDe"},
        },
        "PartitionKeys": [{"Name": "country", "Type": "string"}],
    })
    return name


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1366,900", "--disable-gpu"]:
        options.add_argument(arg)
    os.makedirs(DOWNLOADS, exist_ok=True)
    options.add_experimental_option("prefs", {
        "download.default_directory": DOWNLOADS,
        "download.prompt_for_download": False,
    })
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


class Console:
    def __init__(self, driver):
        self.d = driver
        self.wait = WebDriverWait(driver, 60)

    def shot(self, name):
        """The whole page (up to 2,400 px tall) at the laptop width; every form field on
        it must have a label."""
        unlabelled = self.d.execute_script("""
            return [...document.querySelectorAll('input, select, textarea')]
              .filter((e) => e.type !== 'hidden' && !e.getAttribute('aria-label')
                && !(e.id && document.querySelector(`label[for="${CSS.escape(e.id)}"]`))
                && !e.closest('label'))
              .map((e) => e.outerHTML.slice(0, 120));""")
        assert not unlabelled, (name, unlabelled)
        height = self.d.execute_script("return document.documentElement.scrollHeight")
        self.d.set_window_size(1366, max(900, min(int(height) + 140, 2400)))
        self.d.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
        self.d.set_window_size(1366, 900)

    def find(self, css):
        return self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))

    def click(self, css):
        self.wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, css))).click()

    def click_text(self, text, tag="*"):
        xpath = f"//{tag}[normalize-space()='{text}']"
        self.wait.until(EC.element_to_be_clickable((By.XPATH, xpath))).click()

    def by_id(self, element_id):
        return self.wait.until(EC.element_to_be_clickable((By.ID, element_id)))

    def type(self, css, text):
        el = self.find(css)
        el.clear()
        el.send_keys(text)

    def text_of(self, css):
        return self.find(css).text

    def wait_text(self, css, expected):
        self.wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), expected))

    def body(self):
        return self.d.find_element(By.TAG_NAME, "body").text

    def no_console_errors(self):
        # Refused requests are logged by the browser as network errors (the console shows
        # their problem documents); a script error is a bug.
        errors = [e for e in self.d.get_log("browser") if e["level"] == "SEVERE"
                  and e.get("source") != "network"]
        assert not errors, errors


def requests_after(c, hash_):
    """The URLs the console fetches once the URL's hash is `hash_` (until it settles)."""
    time.sleep(1)
    c.d.execute_script("performance.clearResourceTimings(); location.hash = arguments[0]", hash_)
    time.sleep(1.5)
    return c.d.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")


def crafted_links(c):
    """A link anyone can craft cannot steer the console's token-bearing requests: a job id
    from the URL must be a UUID, every segment taken from it is encoded, a malformed one is
    no page."""
    sent = requests_after(c, "#/jobs/..%2Fdata_mappers%2Fpeople")
    c.find("[data-bad-job-id]")
    assert not any("data_mappers" in u or "/v1/jobs/" in u for u in sent), sent
    sent = requests_after(c, "#/mappers/..%2Fjobs")
    c.wait_text("h1", "Data mapper ../jobs")
    assert any(u.endswith("/v1/data_mappers/..%2Fjobs") for u in sent), sent
    assert not any("/v1/jobs" in u for u in sent), sent
    requests_after(c, "#/jobs/%E0%A4%A")
    c.wait_text("main", "No such page")
    # The same watch sees the console's requests.
    sent = requests_after(c, "#/jobs")
    c.find("[data-table=jobs]")
    assert any("/v1/jobs?page_size=50" in u for u in sent), sent
    c.click("a[href='#/']")
    c.find("[data-card=queue]")


def docs(c):
    """Swagger UI works under the content security policy of /docs: the operations render,
    one opens, and the browser refused nothing."""
    c.d.get(f"{URL}/docs/")
    c.wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) > 20)
    c.click(".opblock-summary")
    c.find(".opblock-body")
    time.sleep(1)
    c.d.save_screenshot(os.path.join(SHOTS, "14-docs.png"))
    logged = c.d.get_log("browser")
    refused = [e for e in logged if "Content Security Policy" in e["message"]]
    assert not refused, refused
    errors = [e for e in logged if e["level"] == "SEVERE"]
    assert not errors, errors


def main():
    write_lake()
    os.makedirs(SHOTS, exist_ok=True)
    d = browser()
    c = Console(d)
    try:
        run(c)
    except Exception:
        c.shot("failure")
        print(c.body(), file=sys.stderr)
        raise
    finally:
        d.quit()


def run(c):
    d = c.d
    # Sign in.
    d.get(f"{URL}/console")
    c.find("#token")
    c.shot("01-sign-in")
    # By keyboard: type the token, Tab to the button, Enter.
    c.find("#token").send_keys(TOKEN)
    c.d.switch_to.active_element.send_keys(Keys.TAB)
    assert c.d.switch_to.active_element.text == "Sign in"
    c.d.switch_to.active_element.send_keys(Keys.ENTER)
    c.wait_text("[data-subject]", "console-test")
    assert "admin" in c.body()
    assert "Audit" in c.text_of("nav")
    c.find("[data-card=queue]")
    c.shot("02-dashboard")
    # The token is in session storage, never in the URL.
    assert TOKEN not in d.current_url
    assert d.execute_script("return sessionStorage.getItem('lethe.token')") == TOKEN
    crafted_links(c)

    # A data mapper through the form: an id the API refuses first.
    c.click("a[href='#/mappers']")
    c.click("a[href='#/mappers/new']")
    c.click("#prov-path")
    c.type("#mapper-id", "People Lake")
    c.type("#path-location", f"file://{LAKE}/people")
    Select(c.find("#path-format")).select_by_value("parquet")
    c.type("#path-keys", "country")
    c.type("#columns", "id")
    c.click("#opt-allow_unversioned")
    c.click_text("Save data mapper", "button")
    error = c.find("#mapper-id-error")
    assert error.text, "the id's message is shown next to the field"
    assert c.find("#mapper-id").get_attribute("aria-invalid") == "true"
    # The field with the message has the focus (keyboard users land on it).
    assert d.switch_to.active_element.get_attribute("id") == "mapper-id"
    d.execute_script("window.scrollTo(0, 0)")
    c.shot("03-mapper-form-error")
    c.type("#mapper-id", "people")
    c.click_text("Save data mapper", "button")
    c.wait_text("h1", "Data mapper people")
    c.shot("04-mapper")


    # Queue a simple and a composite match.
    c.click("a[href='#/queue']")
    c.type("#match-id", str(ERASED["de"][0]))
    c.click_text("Queue", "button")
    c.wait_text("[role=status]", "1 subject(s) queued")
    c.click("#mode-composite")
    c.type("#part-col-0", "country")
    c.type("#part-val-0", "fr")
    c.click_text("Add a column", "button")
    c.type("#part-col-1", "id")
    c.type("#part-val-1", str(ERASED["fr"][0]))
    c.click("#qm-people")
    c.click_text("Queue", "button")
    c.wait.until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "[data-table=queue] tbody tr")) == 2)
    assert "country = fr and id = 112" in c.text_of("[data-table=queue]")
    c.shot("05-queue")

    # A mapper that queued items name cannot be deleted: the 409's reason is shown.
    d.get(f"{URL}/console#/mappers/people")
    c.click_text("Delete", "button")
    d.switch_to.alert.accept()
    c.wait_text("[role=alert]", "queued items name data mapper")
    c.shot("05b-mapper-delete-refused")

    # A dry run, reviewed first, followed live to its end.
    c.click("a[href='#/jobs']")
    c.click("a[href='#/jobs/new']")
    c.click_text("Review", "button")
    c.find("[data-review]")
    assert "dry run" in c.text_of("[data-review]")
    c.shot("06-job-review")
    c.click_text("Start the dry run", "button")
    c.wait_text("[data-job-status]", "completed")
    c.find("[data-report]")
    assert "matched" in c.text_of("[data-table=report-matches]")
    c.shot("07-dry-run")

    # The real job.
    c.click("a[href='#/jobs']")
    c.click("a[href='#/jobs/new']")
    c.click("#dry-run")
    c.click_text("Review", "button")
    assert "real erasure" in c.text_of("[data-review]")
    c.click_text("Start the erasure", "button")
    c.find("[data-job-progress]")
    url = d.current_url
    c.wait_text("[data-job-status]", "completed")
    assert d.current_url == url, "no reload, no navigation"
    c.wait_text("[data-rows-removed]", "2")
    c.find("[data-report]")
    matches = c.text_of("[data-table=report-matches]")
    assert matches.count("erased") >= 2, matches
    c.shot("08-job")
    # At 200% zoom (half the CSS width) nothing needs sideways scrolling but wide tables,
    # which scroll inside their own box.
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 683, "height": 900, "deviceScaleFactor": 2, "mobile": False})
    overflow = d.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 200%"
    d.save_screenshot(os.path.join(SHOTS, "11-job-at-200-percent.png"))
    d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # Export the report.
    c.click_text("Export the report (JSON)", "button")
    job_id = url.rsplit("/", 1)[1]
    path = os.path.join(DOWNLOADS, f"lethe-job-{job_id}.json")
    for _ in range(100):
        if os.path.exists(path) and not glob.glob(os.path.join(DOWNLOADS, "*.crdownload")):
            break
        time.sleep(0.1)
    with open(path) as f:
        report = json.load(f)
    assert report["job"]["status"] == "completed", report["job"]
    assert sum(o["rows_removed"] or 0 for o in report["objects"]) == 2
    assert {m["status"] for m in report["matches"]} == {"erased"}

    # The dashboard and the audit trail show what happened.
    c.click("a[href='#/']")
    c.wait_text("[data-card=queue]", "0")
    c.shot("09-dashboard-after")
    c.click("a[href='#/audit']")
    c.wait_text("[data-table=audit]", "job.start")
    c.shot("10-audit")

    # A Glue mapper, picked with the catalog browser: database, table, a nested column.
    database = glue_database()
    c.click("a[href='#/mappers']")
    c.click("a[href='#/mappers/new']")
    assert c.find("#prov-glue").is_selected(), "Glue is the default for who may browse it"
    c.type("#mapper-id", "customers")
    c.wait.until(lambda _: database in c.text_of("#glue-db"))
    Select(c.find("#glue-db")).select_by_value(database)
    c.wait.until(lambda _: "customers" in c.text_of("#glue-table"))
    Select(c.find("#glue-table")).select_by_value("customers")
    c.by_id("col-contact.email").click()
    c.by_id("key-country").click()
    c.shot("04b-mapper-glue-browser")
    c.click_text("Save data mapper", "button")
    c.wait_text("h1", "Data mapper customers")
    assert "contact.email (string)" in c.body()
    assert "s3:::console-lake/customers/*" in c.body(), "the IAM policy is shown"

    # Governance: classify a nested column of the Glue table, then compare with Lake
    # Formation (moto's).
    c.click("a[href='#/governance']")
    # The database list loads after the page: wait for it (moto holds every test's).
    c.wait.until(lambda _: database in c.text_of("#cls-db"))
    Select(c.find("#cls-db")).select_by_value(database)
    c.wait.until(lambda _: "customers" in c.text_of("#cls-table"))
    Select(c.find("#cls-table")).select_by_value("customers")
    Select(c.find("select[aria-label='classification of contact.email']")).select_by_value("pii")
    c.click_text("Save 1 change(s)", "button")
    c.wait_text("[role=status]", "Classifications saved")
    c.click_text("Compare with Lake Formation", "button")
    c.find("[data-plan]")
    c.shot("12-governance")

    # An auditor sees what happened but none of the buttons that change it.
    c.click_text("Sign out", "button")
    c.find("#token").send_keys(os.environ["LETHE_AUDITOR_TOKEN"])
    c.click_text("Sign in", "button")
    c.wait_text("[data-subject]", "console-auditor")
    nav = c.text_of("nav")
    assert "Audit" in nav and "Jobs" in nav, nav
    c.click("a[href='#/jobs']")
    c.find("[data-table=jobs]")
    assert not d.find_elements(By.CSS_SELECTOR, "a[href='#/jobs/new']")
    c.click("a[href='#/queue']")
    c.find("[data-table=queue]")
    assert not d.find_elements(By.ID, "match-id"), "no queueing form for an auditor"
    d.get(f"{URL}/console#/mappers/people")
    c.wait_text("h1", "Data mapper people")
    assert not d.find_elements(By.XPATH, "//button[normalize-space()='Delete']")
    assert not d.find_elements(By.XPATH, "//a[normalize-space()='Edit']")
    c.shot("13-auditor")
    c.no_console_errors()
    docs(c)

    # The lake, read back independently: exactly the erased rows are gone.
    for country, ids in ROWS.items():
        files = glob.glob(os.path.join(LAKE, "people", f"country={country}", "*.parquet"))
        got = sorted(i for f in files for i in pq.read_table(f).column("id").to_pylist())
        want = sorted(i for i in ids if i not in ERASED[country])
        assert got == want, (country, got)
    print("console: signed in, mapper via form (field error shown), 2 matches queued, "
          "dry run and erasure followed live, report exported, lake checked")


if __name__ == "__main__":
    try:
        main()
    except JavascriptException as e:
        print(e, file=sys.stderr)
        sys.exit(1)
