/* Auto-refresh for the console's dashboard and job list.
 *
 * Off until the operator ticks the box; the choice is remembered per page
 * (localStorage). The page reloads itself every few seconds, but never while
 * the operator is in the middle of something: jobs ticked, an action chosen,
 * a field being typed in or changed. Then it waits and says why, so that no
 * selection or half-typed search is lost. No inline script: this file works
 * under a strict Content-Security-Policy.
 */
(function () {
    "use strict";
    const box = document.getElementById("jobs-refresh");
    if (!box) {
        return;
    }
    const toggle = box.querySelector("input[type=checkbox]");
    const status = box.querySelector(".jobs-refresh-status");
    const key = "django_jobs.refresh." + box.dataset.page;
    const text = JSON.parse(document.getElementById("jobs-refresh-text").textContent);
    const TYPED = "textarea, select, input:not([type=checkbox]):not([type=radio])"
        + ":not([type=submit]):not([type=button]):not([type=hidden])";
    let left = null;

    function every() {
        return Math.max(1, Number(box.dataset.interval) || 10);
    }

    function changed(field) {
        if (field.type === "checkbox" || field.type === "radio") {
            return field.checked !== field.defaultChecked;
        }
        if (field.tagName === "SELECT") {
            return Array.from(field.options).some(
                (option) => option.selected !== option.defaultSelected
            );
        }
        return field.value !== field.defaultValue;
    }

    /* Why the page must not reload now, or "" if it may. */
    function busy() {
        if (document.querySelector("input.action-select:checked")) {
            return text.selected;
        }
        const active = document.activeElement;
        if (active && active !== toggle && active.matches(TYPED)) {
            return text.typing;
        }
        const fields = document.querySelectorAll("#content-main input, #content-main select, #content-main textarea");
        for (const field of fields) {
            if (field !== toggle && field.type !== "hidden" && changed(field)) {
                return text.changed;
            }
        }
        return "";
    }

    function tick() {
        if (!toggle.checked) {
            status.textContent = "";
            left = null;
            return;
        }
        const reason = busy();
        if (reason) {
            status.textContent = text.paused.replace("%s", reason);
            left = every();
            return;
        }
        left = left === null ? every() : left - 1;
        if (left <= 0) {
            status.textContent = text.refreshing;
            window.location.reload();
            return;
        }
        status.textContent = text.next.replace("%s", left);
    }

    toggle.checked = window.localStorage.getItem(key) === "on";
    toggle.addEventListener("change", function () {
        window.localStorage.setItem(key, toggle.checked ? "on" : "off");
        left = null;
        tick();
    });
    window.setInterval(tick, 1000);
    tick();
}());
