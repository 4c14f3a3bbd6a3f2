// Import: upload a video with a progress bar; it becomes a recording to review.
"use strict";
(function () {
  const {say, csrf} = window.vig;
  const form = document.getElementById("import");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const file = form.file.files[0];
    if (!file) { say("choose a video first", "error"); return; }
    const bar = document.getElementById("upload-bar");
    const text = document.getElementById("upload-text");
    document.getElementById("upload").hidden = false;
    form.querySelector("button").disabled = true;
    const xhr = new XMLHttpRequest();
    const query = form.case.value ? "?case=" + encodeURIComponent(form.case.value) : "";
    xhr.open("POST", "/api/imports" + query);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("X-Filename", encodeURIComponent(file.name).slice(0, 120));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (ev) => {
      if (!ev.lengthComputable) return;
      bar.value = Math.round(100 * ev.loaded / ev.total);
      text.textContent = "Uploading… " + bar.value + " %";
      if (ev.loaded === ev.total) text.textContent = "Uploaded. The box is preparing the film…";
    };
    xhr.onload = () => {
      form.querySelector("button").disabled = false;
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (err) { data = null; }
      if (xhr.status === 201 && data) {
        bar.value = 100;
        text.textContent = "Ready. Opening it for review…";
        window.location.href = data.review_url;
      } else {
        text.textContent = "";
        say((data && data.error) || "the upload failed (" + xhr.status + ")", "error");
      }
    };
    xhr.onerror = () => {
      form.querySelector("button").disabled = false;
      say("the upload was cut off: check the box's Wi-Fi and try again", "error");
    };
    xhr.send(file);
  });
})();
