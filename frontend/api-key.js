// The optional API key field. A tenant's key gives the page that tenant's limits; it is a secret,
// so it is kept only in this tab's sessionStorage (gone with the tab, never in localStorage, never
// in a share link or a copied curl command) and sent only as `Authorization: Bearer <key>`.

const STORAGE_KEY = "jsbox.apiKey";
/** What the ingress accepts in a key: visible ASCII, as a header value can carry it. */
const KEY_PATTERN = /^[\x21-\x7e]+$/;

/**
 * Restores the field from sessionStorage, keeps it there as it changes, and reads it. `onChange`
 * is called once a new key is entered (on Enter or leaving the field), not on every keystroke.
 */
export function apiKeyField(input, { onChange }) {
  input.value = read() ?? "";
  input.addEventListener("input", () => {
    input.removeAttribute("aria-invalid");
    save(input.value.trim());
  });
  input.addEventListener("change", onChange);

  return {
    /** The key as typed, without surrounding spaces; "" when there is none. */
    get value() {
      return input.value.trim();
    },
    /** Why the key cannot be sent, or `null`; marks the field when there is a problem. */
    problem() {
      const key = input.value.trim();
      if (key === "" || KEY_PATTERN.test(key)) return null;
      input.setAttribute("aria-invalid", "true");
      return "The API key may hold only visible ASCII characters (no spaces or accents).";
    },
    focus() {
      input.focus();
    },
  };
}

function read() {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

function save(key) {
  try {
    if (key === "") sessionStorage.removeItem(STORAGE_KEY);
    else sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    // Storage can be switched off; the key then lasts as long as the page.
  }
}
