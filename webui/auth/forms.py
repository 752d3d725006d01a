from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import AnyOf, DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    username = StringField("用户名 Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("密码 Password", validators=[DataRequired(), Length(max=256)])
    remember = BooleanField("记住我 Remember me")


class PasswordForm(FlaskForm):
    old_password = PasswordField(
        "当前密码 Current password", validators=[DataRequired(), Length(max=256)]
    )
    new_password = PasswordField(
        "新密码 New password", validators=[DataRequired(), Length(min=8, max=256)]
    )
    confirm = PasswordField(
        "再次输入新密码 New password again",
        validators=[
            DataRequired(),
            EqualTo("new_password", message="两次输入不一致 / Does not match"),
        ],
    )


class LanguageForm(FlaskForm):
    # Rendered as a <select> by the template (LANGUAGE_CHOICES); only these values pass.
    # "zh" is the earlier spelling of zh_Hans (still accepted).
    language = StringField(
        "界面语言 Language", validators=[AnyOf(["", "zh", "zh_Hans", "zh_Hant", "en"])]
    )


LANGUAGE_CHOICES = (
    ("", "跟随浏览器 / 跟隨瀏覽器 / Browser"),
    ("zh_Hans", "简体中文"),
    ("zh_Hant", "繁體中文"),
    ("en", "English"),
)
