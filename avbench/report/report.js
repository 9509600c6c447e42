// Sorting of the item table (worst first by the chosen metric; `#sort=K` in the
// address picks metric K) and a check that every image and audio clip loads.
(function () {
  "use strict";
  var select = document.getElementById("sort-by");
  var table = document.getElementById("items");

  function sortItems(choice, higherIsBetter) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    function value(row) {
      var cell = row.querySelector('td[data-metric="' + choice + '"]');
      return cell && cell.dataset.value !== "" ? parseFloat(cell.dataset.value) : null;
    }
    rows.sort(function (a, b) {
      if (choice !== "order") {
        var x = value(a), y = value(b);
        if ((x === null) !== (y === null)) return x === null ? -1 : 1;  // no value (failed, degenerate) is worst
        if (x !== null && x !== y) return higherIsBetter ? x - y : y - x;
      }
      return a.dataset.order - b.dataset.order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  function applyChoice() {
    var option = select.options[select.selectedIndex];
    sortItems(option.value, option.dataset.higher === "1");
  }

  if (select && table) {
    var wanted = /^#sort=(.+)$/.exec(location.hash);
    if (wanted && select.querySelector('option[value="' + CSS.escape(wanted[1]) + '"]')) select.value = wanted[1];
    select.addEventListener("change", function () { history.replaceState(null, "", "#sort=" + select.value); applyChoice(); });
    applyChoice();
  }

  function settled(audio) {
    return new Promise(function (resolve) {
      if (audio.readyState >= 1 || audio.error) return resolve();
      audio.addEventListener("loadedmetadata", resolve);
      audio.addEventListener("error", resolve);
      setTimeout(resolve, 4000);
    });
  }

  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    var audios = Array.prototype.slice.call(document.querySelectorAll("audio"));
    Promise.all(audios.map(settled)).then(function () {
      var summary = {
        items: table ? table.tBodies[0].rows.length : 0,
        images: images.map(function (img) { return { src: img.getAttribute("src"), width: img.naturalWidth }; }),
        audio: audios.map(function (a) {
          return { src: a.getAttribute("src"), canPlay: a.canPlayType("audio/wav"), readyState: a.readyState,
                   networkState: a.networkState, error: a.error ? a.error.code : null, duration: a.duration };
        })
      };
      var badImages = images.filter(function (img) { return img.naturalWidth === 0; });
      var badAudio = audios.filter(function (a) { return a.readyState < 1; });
      badImages.concat(badAudio).forEach(function (el) { el.classList.add("broken"); });
      document.getElementById("media-summary").textContent = JSON.stringify(summary);
      document.getElementById("media-check").textContent =
        "Media check: " + (images.length - badImages.length) + " of " + images.length + " images and " +
        (audios.length - badAudio.length) + " of " + audios.length + " audio clips load" +
        (badImages.length + badAudio.length ? "; broken ones are outlined in red." : ".");
    });
  });
})();
